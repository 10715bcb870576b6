/*
 * httpd-state: handoff-httpd's served= count, in a sealed memfd that each
 * generation maps and hands on; see httpd-state.h.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handoff.h"
#include "httpd-state.h"

#define STATE_MAGIC	"hoffstat"
#define STATE_VERSION	1
#define MIB		((size_t)1 << 20)
/* A successor must be able to map and write it, and it must never
 * change size under a mapping (a shrink would make our accesses fault). */
#define STATE_SEALS_NEEDED	(F_SEAL_GROW | F_SEAL_SHRINK)
#ifdef F_SEAL_FUTURE_WRITE
#define STATE_SEALS_REFUSED	(F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)
#else
#define STATE_SEALS_REFUSED	F_SEAL_WRITE
#endif

/*
 * At offset 0 of the memfd, in host byte order (it never leaves the
 * machine), checked field by field before anything in it is trusted. A
 * later layout gets another version: an older successor then starts a
 * new count instead of misreading it.
 */
struct state_header {
	char		magic[8];	/* STATE_MAGIC, no NUL */
	uint32_t	version;	/* STATE_VERSION */
	uint32_t	header_size;	/* sizeof(struct state_header) */
	uint64_t	size;		/* bytes of the memfd, fixed by its seals */
	uint64_t	served;		/* GET / answered; atomic adds only */
};

struct state {
	struct state_header	*hdr;	/* the mapping, size bytes */
	size_t			 size;
};

int
state_listen(struct handoff *h)
{
	return handoff_listen(h, STATE_NAME, "fd:");
}

/* "N MiB" when it is whole MiB, else "N bytes". */
static const char *
state_size_text(size_t size, char *buf, size_t len)
{
	if (size >= MIB && size % MIB == 0)
		snprintf(buf, len, "%zu MiB", size / MIB);
	else
		snprintf(buf, len, "%zu bytes", size);
	return buf;
}

/* The seals and size of fd, if it can be our state: 0, or -1 and why. */
static int
state_check_fd(int fd, size_t *size, char *why, size_t len)
{
	struct stat	st;
	int		seals;

	if (fstat(fd, &st) == -1) {
		snprintf(why, len, "fstat: %s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (seals = fcntl(fd, F_GET_SEALS)) == -1) {
		snprintf(why, len, "not a memfd (no seals to read)");
		return -1;
	}
	if ((seals & STATE_SEALS_NEEDED) != STATE_SEALS_NEEDED) {
		snprintf(why, len, "a memfd not sealed against resizing "
		    "(seals 0x%x): it could shrink under our mapping", seals);
		return -1;
	}
	if ((seals & STATE_SEALS_REFUSED) != 0) {
		snprintf(why, len, "a memfd sealed against writing (seals "
		    "0x%x)", seals);
		return -1;
	}
	if ((uintmax_t)st.st_size < sizeof(struct state_header) ||
	    (uintmax_t)st.st_size > (uintmax_t)STATE_MB_MAX * MIB) {
		snprintf(why, len, "%lld bytes: not between the %zu-byte "
		    "header and %d MiB", (long long)st.st_size,
		    sizeof(struct state_header), STATE_MB_MAX);
		return -1;
	}
	*size = (size_t)st.st_size;
	return 0;
}

/* The header of a mapping of size bytes: 0 if it is ours, or -1 and why. */
static int
state_check_header(const struct state_header *hdr, size_t size, char *why,
    size_t len)
{
	if (memcmp(hdr->magic, STATE_MAGIC, sizeof(hdr->magic)) != 0) {
		snprintf(why, len, "no handoff-httpd state header in it");
		return -1;
	}
	if (hdr->version != STATE_VERSION) {
		snprintf(why, len, "state version %u; this version reads %d "
		    "only", hdr->version, STATE_VERSION);
		return -1;
	}
	if (hdr->header_size != sizeof(*hdr) || hdr->size != size) {
		snprintf(why, len, "its header says a %u-byte header and "
		    "%llu bytes, not %zu and the memfd's %zu",
		    hdr->header_size, (unsigned long long)hdr->size,
		    sizeof(*hdr), size);
		return -1;
	}
	return 0;
}

/* Maps size bytes of fd into s: 0, or -1 and why. */
static int
state_map(struct state *s, int fd, size_t size, char *why, size_t len)
{
	void	*p;
	char	 text[32];

	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(why, len, "cannot map %s: %s", state_size_text(size,
		    text, sizeof(text)), strerror(errno));
		return -1;
	}
	s->hdr = p;
	s->size = size;
	return 0;
}

static void
state_unmap(struct state *s)
{
	if (s->hdr != NULL)
		munmap(s->hdr, s->size);
	s->hdr = NULL;
	s->size = 0;
}

/* Maps the predecessor's state fd (the handle's): 0, or -1 and why. */
static int
state_adopt(struct state *s, int fd, char *why, size_t len)
{
	size_t	size = 0;

	if (state_check_fd(fd, &size, why, len) == -1 ||
	    state_map(s, fd, size, why, len) == -1)
		return -1;
	if (state_check_header(s->hdr, size, why, len) == -1) {
		state_unmap(s);
		return -1;
	}
	return 0;
}

/*
 * Writes every page after the first, so that a large state costs what it
 * would in use (the pages exist, counted as shared memory), through the
 * fd: this process's page tables stay one page, as a successor's do, and
 * running out of memory is an error here, not a SIGBUS on a store.
 */
static int
state_fill(int fd, size_t from, size_t size)
{
	static char	chunk[64 * 1024];
	size_t		n;
	ssize_t		w;

	memset(chunk, 0xa5, sizeof(chunk));
	while (from < size) {
		n = size - from < sizeof(chunk) ? size - from : sizeof(chunk);
		if ((w = pwrite(fd, chunk, n, (off_t)from)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = ENOSPC;
			return -1;
		}
		from += (size_t)w;
	}
	return 0;
}

/*
 * A new state of mb MiB (one page if 0), mapped into s and passed to the
 * handle, which owns the fd from then on: 0, or -1 with err set.
 */
static int
state_create(struct state *s, struct handoff *h, unsigned mb, char *err,
    size_t errlen)
{
	size_t	page = (size_t)sysconf(_SC_PAGESIZE);
	size_t	size = mb > 0 ? (size_t)mb * MIB : page;
	char	text[32], why[128];
	int	fd = -1, rc = -1;

	if ((uintmax_t)mb * MIB > SIZE_MAX) {
		snprintf(err, errlen, "state: --state-mb %u is more than this "
		    "machine can map; ask for less", mb);
		goto out;
	}
	fd = memfd_create(STATE_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd == -1) {
		snprintf(err, errlen, "state: memfd_create: %s",
		    strerror(errno));
		goto out;
	}
	if (ftruncate(fd, (off_t)size) == -1 || fcntl(fd, F_ADD_SEALS,
	    F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) == -1 ||
	    state_fill(fd, page, size) == -1) {
		snprintf(err, errlen, "state: cannot make %s of shared memory: "
		    "%s; ask for less with --state-mb", state_size_text(size,
		    text, sizeof(text)), strerror(errno));
		goto out;
	}
	if (state_map(s, fd, size, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "state: %s", why);
		goto out;
	}
	memcpy(s->hdr->magic, STATE_MAGIC, sizeof(s->hdr->magic));
	s->hdr->version = STATE_VERSION;
	s->hdr->header_size = sizeof(*s->hdr);
	s->hdr->size = size;
	s->hdr->served = 0;
	/* Takes fd, even when it fails. */
	rc = handoff_pass_fd(h, STATE_NAME, fd);
	fd = -1;
	if (rc == -1) {
		snprintf(err, errlen, "state: %s", handoff_strerror(h));
		state_unmap(s);
	}
out:
	if (fd != -1)
		close(fd);
	return rc;
}

/* What the kernel calls fd ("pipe:[1234]", "/memfd:state (deleted)"). */
static const char *
state_fd_text(int fd, char *buf, size_t len)
{
	char	path[64];
	ssize_t	n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if ((n = readlink(path, buf, len - 1)) == -1) {
		snprintf(buf, len, "fd %d", fd);
		return buf;
	}
	buf[n] = '\0';
	return buf;
}

struct state *
state_open(struct handoff *h, unsigned mb, char *err, size_t errlen)
{
	struct state	*s;
	char		 why[160], what[80], got[32], note[80] = "";
	int		 fd = handoff_fd(h, STATE_NAME);

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "state: out of memory");
		return NULL;
	}
	if (fd >= 0 && state_adopt(s, fd, why, sizeof(why)) == 0) {
		if (mb > 0 && s->size != (size_t)mb * MIB)
			snprintf(note, sizeof(note), " (--state-mb %u applies "
			    "to a new state only)", mb);
		handoff_log(h, "state: adopted the predecessor's, %s, "
		    "served=%llu%s", state_size_text(s->size, got,
		    sizeof(got)), (unsigned long long)state_served(s), note);
		goto out;
	}
	if (fd >= 0)
		handoff_log(h, "state: refused the \"%s\" fd offered (%s): %s; "
		    "starting a new count", STATE_NAME, state_fd_text(fd, what,
		    sizeof(what)), why);
	else if (handoff_predecessor(h) > 0)
		handoff_log(h, "state: pid %ld offered none (a version "
		    "without it); starting a new count",
		    (long)handoff_predecessor(h));
	if (state_create(s, h, mb, err, errlen) == -1) {
		free(s);
		s = NULL;
		goto out;
	}
	handoff_log(h, "state: new, %s, served=0", state_size_text(s->size,
	    got, sizeof(got)));
out:
	return s;
}

uint64_t
state_count(struct state *s)
{
	return __atomic_add_fetch(&s->hdr->served, 1, __ATOMIC_RELAXED);
}

uint64_t
state_served(const struct state *s)
{
	return __atomic_load_n(&s->hdr->served, __ATOMIC_RELAXED);
}

void
state_close(struct state *s)
{
	if (s == NULL)
		return;
	state_unmap(s);
	free(s);
}
