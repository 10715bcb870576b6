/*
 * wire: one message per SOCK_SEQPACKET datagram, fds as SCM_RIGHTS.
 *
 * Returns 0 (send) or the length (recv) on success, -1 with errno on
 * failure. Fds passed to wire_send stay the caller's. Fds that wire_recv
 * returns are the caller's; on failure wire_recv leaves none open.
 */
#ifndef HANDOFF_WIRE_H
#define HANDOFF_WIRE_H

#include <sys/types.h>
#include <stddef.h>

#define WIRE_MAX_MSG	65536	/* bytes of JSON in one message */
#define WIRE_MAX_FDS	252	/* fds on one message: musl cannot send 253 */

int	wire_send(int, const void *, size_t, const int *, size_t);
ssize_t	wire_recv(int, void *, size_t, int *, size_t, size_t *);
ssize_t	wire_recv_lossy(int, void *, size_t, int *, size_t, size_t *, int *);
void	wire_close_fds(int *, size_t);
int	wire_wait(int, short, int);
/* Bytes sent on the socket that its peer has not read yet (0 if unknown). */
int	wire_unread(int);

#endif
