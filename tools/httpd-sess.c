/*
 * httpd-sess: a set of session ids, open addressing with linear probing,
 * grown by doubling up to SESS_MAX.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpd-sess.h"

#define SESS_FIRST	256	/* slots at first: a power of two */

struct sess_set {
	char	(*slot)[SESS_ID_MAX + 1];	/* "" is empty */
	size_t	 cap, n;
};

/* FNV-1a: the ids are the clients', not an attacker's table of ours. */
static size_t
hash(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

static size_t
find(const struct sess_set *set, const char *id)
{
	size_t	i = hash(id) & (set->cap - 1);

	while (set->slot[i][0] != '\0' && strcmp(set->slot[i], id) != 0)
		i = (i + 1) & (set->cap - 1);
	return i;
}

struct sess_set *
sess_new(void)
{
	struct sess_set	*set;

	if ((set = calloc(1, sizeof(*set))) == NULL)
		return NULL;
	if ((set->slot = calloc(SESS_FIRST, sizeof(*set->slot))) == NULL) {
		free(set);
		return NULL;
	}
	set->cap = SESS_FIRST;
	return set;
}

void
sess_free(struct sess_set *set)
{
	if (set == NULL)
		return;
	free(set->slot);
	free(set);
}

int
sess_id(const void *data, size_t len, char *id)
{
	const char	*p = data, *end = p + len, *q;

	if (len < 6 || memcmp(p, "sess=", 5) != 0)
		return 0;
	for (p += 5, q = p; q < end && *q != ' ' && *q != '\0'; q++)
		;
	if (q == p || (size_t)(q - p) > SESS_ID_MAX)
		return 0;
	memcpy(id, p, (size_t)(q - p));
	id[q - p] = '\0';
	return 1;
}

int
sess_owned(const struct sess_set *set, const char *id)
{
	return set->slot[find(set, id)][0] != '\0';
}

/* Twice the slots, every id placed again. */
static int
grow(struct sess_set *set)
{
	struct sess_set	 big;
	size_t		 i;

	big.cap = set->cap * 2;
	big.n = set->n;
	if ((big.slot = calloc(big.cap, sizeof(*big.slot))) == NULL)
		return -1;
	for (i = 0; i < set->cap; i++)
		if (set->slot[i][0] != '\0')
			memcpy(big.slot[find(&big, set->slot[i])],
			    set->slot[i], sizeof(set->slot[i]));
	free(set->slot);
	*set = big;
	return 0;
}

int
sess_claim(struct sess_set *set, const char *id)
{
	size_t	i;

	if (sess_owned(set, id))
		return 0;
	if (set->n >= SESS_MAX)
		return -1;
	/* At most half full: probes stay short. */
	if ((set->n + 1) * 2 > set->cap && grow(set) == -1)
		return -1;
	i = find(set, id);
	memcpy(set->slot[i], id, strlen(id) + 1);
	set->n++;
	return 0;
}

size_t
sess_count(const struct sess_set *set)
{
	return set->n;
}
