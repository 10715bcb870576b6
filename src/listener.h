/*
 * listener: address specs, binding, and the identity of a socket fd as
 * read from the kernel (never from what a peer claims).
 *
 * Returns 0 or an fd on success, -1 on failure with the reason in err.
 */
#ifndef HANDOFF_LISTENER_H
#define HANDOFF_LISTENER_H

#include <sys/socket.h>
#include <sys/un.h>
#include <stddef.h>

/* The longest address formatted: "@" and a 108-byte abstract sun_path. */
#define LISTENER_ADDR_MAX	112
#define LISTENER_BACKLOG	1024

enum listener_kind {
	LISTENER_TCP,
	LISTENER_UDP,
	LISTENER_UNIX,
	LISTENER_FD,
};

struct listener_spec {
	enum listener_kind	kind;
	int			family;
	int			socktype;
	struct sockaddr_storage	addr;
	socklen_t		addrlen;
	int			any_port;	/* port 0: whatever was bound */
	int			naddrs;		/* a name's addresses: the
						 * first is used */
	char			address[LISTENER_ADDR_MAX]; /* formatted */
};

/* What the kernel says an fd is. */
struct listener_id {
	int	family;
	int	socktype;
	int	listening;
	char	address[LISTENER_ADDR_MAX];
};

int		 listener_spec_parse(const char *, struct listener_spec *,
		    char *, size_t);
int		 listener_bind(const struct listener_spec *, const char *,
		    char *, size_t);
int		 listener_identify(int, struct listener_id *);
int		 listener_matches(const struct listener_spec *,
		    const struct listener_id *);
int		 listener_spec_cmp(const struct listener_spec *,
		    const struct listener_spec *);
int		 listener_spec_clash(const struct listener_spec *,
		    const struct listener_spec *);
void		 listener_format(const struct sockaddr *, socklen_t, char *,
		    size_t);
int		 listener_addr_parse(const char *, struct sockaddr_storage *,
		    socklen_t *);
const char	*listener_kind_name(enum listener_kind);
const char	*listener_family_name(int);
const char	*listener_socktype_name(int);
enum listener_kind listener_kind_of(const struct listener_id *);
int		 listener_unix_stale(const char *, char *, size_t);

#endif
