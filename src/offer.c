/*
 * offer: what an incumbent offers, planned once and encoded once for
 * every successor: the offer message, then batches of "fds" messages of
 * at most WIRE_MAX_FDS listeners each, the control socket first.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handoff-int.h"
#include "message.h"
#include "wire.h"

/* Keep each batch well under the message limit. */
#define BATCH_BYTES	(WIRE_MAX_MSG - 4096)

/*
 * Where the batch that starts at entry `first` ends (exclusive): at most
 * WIRE_MAX_FDS fds and BATCH_BYTES of JSON, as message.c measures it.
 */
static size_t
batch_end(struct handoff *h, size_t batch, size_t first)
{
	const char	*row[MSG_NCOLUMNS];
	size_t		 i, bytes = msg_fds_frame_len(batch);

	for (i = first; i < hentries(h) && i - first < WIRE_MAX_FDS; i++) {
		hlistener_cells(hentry(h, i), row);
		bytes += msg_fds_row_len(row);
		if (bytes > BATCH_BYTES && i > first)
			break;
	}
	return i;
}

/* The "fds" message of entries [first, end), its listeners in columns. */
static char *
encode_batch(struct handoff *h, size_t batch, size_t first, size_t end,
    size_t *len)
{
	const char	**cells;
	char		 *buf;
	size_t		  i;

	if ((cells = calloc((end - first) * MSG_NCOLUMNS,
	    sizeof(*cells))) == NULL)
		return NULL;
	for (i = first; i < end; i++)
		hlistener_cells(hentry(h, i),
		    &cells[(i - first) * MSG_NCOLUMNS]);
	buf = msg_encode_fds(batch, cells, end - first, len);
	free(cells);
	return buf;
}

/*
 * Plans the offer's batches once: the listeners and what the kernel says
 * of them do not change while we serve. Each is encoded when it is first
 * sent (the successor decodes one while we encode the next) and kept for
 * any later successor.
 */
int
offer_plan(struct handoff *h)
{
	struct hbatch	*b;
	size_t		 first = 0, cap = 0;

	if (h->batches != NULL)
		return 0;
	h->nbatches = 0;
	while (first < hentries(h)) {
		if (h->nbatches == cap) {
			cap = cap ? cap * 2 : 8;
			if ((b = reallocarray(h->batches, cap,
			    sizeof(*b))) == NULL) {
				offer_free(h);
				return -1;
			}
			h->batches = b;
		}
		b = &h->batches[h->nbatches++];
		memset(b, 0, sizeof(*b));
		b->first = first;
		first = b->end = batch_end(h, h->nbatches - 1, first);
	}
	return 0;
}

void
offer_free(struct handoff *h)
{
	size_t	i;

	for (i = 0; i < h->nbatches; i++)
		free(h->batches[i].buf);
	free(h->batches);
	h->batches = NULL;
	h->nbatches = 0;
}

json_t *
offer_build(struct handoff *h, size_t count, int nb)
{
	json_t	*offer;

	offer = msg_new("offer");
	if (offer == NULL ||
	    json_object_set_new(offer, "pid", json_integer(getpid())) == -1 ||
	    json_object_set_new(offer, "generation",
	    json_integer(h->generation)) == -1 ||
	    json_object_set_new(offer, "tag", json_string(h->tag)) == -1 ||
	    json_object_set_new(offer, "count",
	    json_integer((json_int_t)count)) == -1 ||
	    json_object_set_new(offer, "batches", json_integer(nb)) == -1 ||
	    json_object_set(offer, "state", h->state != NULL ? h->state :
	    json_null()) == -1 || json_object_set_new(offer, "extensions",
	    hextensions(h)) == -1) {
		json_decref(offer);
		return NULL;
	}
	return offer;
}

/*
 * Batch i of the offer, encoded at its first use and kept: its bytes,
 * with its fds (borrowed from the listeners) in fds[*nfds]. NULL with a
 * reason for the successor in why when it cannot be encoded.
 */
const char *
offer_batch(struct handoff *h, size_t i, size_t *len, int *fds,
    size_t *nfds, char *why, size_t whylen)
{
	struct hbatch	*b = &h->batches[i];
	size_t		 k;

	if (b->buf == NULL && (b->buf = encode_batch(h, i, b->first, b->end,
	    &b->len)) == NULL) {
		snprintf(why, whylen, "cannot encode a batch of the offer: %s",
		    errno == EINVAL ? "a listener's address or spec is not "
		    "UTF-8" : errno == EMSGSIZE ? "over the message limit (a "
		    "bug)" : "out of memory");
		return NULL;
	}
	for (k = b->first; k < b->end; k++)
		fds[k - b->first] = hentry(h, k)->fd;
	*nfds = b->end - b->first;
	*len = b->len;
	return b->buf;
}
