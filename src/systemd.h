/*
 * systemd: the notify protocol (NOTIFY_SOCKET) and socket activation
 * (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), written from their documented
 * descriptions; no libsystemd.
 *
 * systemd_notify returns 1 when sent, 0 when not applicable (no
 * NOTIFY_SOCKET), -1 with errno on failure. systemd_listen_fds returns
 * the number of fds put in the set, 0 when not applicable, -1 on failure
 * with the reason in the handle.
 */
#ifndef HANDOFF_SYSTEMD_H
#define HANDOFF_SYSTEMD_H

#include <sys/types.h>

/* The first fd socket activation passes (SD_LISTEN_FDS_START). */
#define LISTEN_FDS_START	3

struct handoff;
struct adopt_set;

int	systemd_notify(const char *, ...)
	    __attribute__((format(printf, 1, 2)));
int	systemd_listen_fds(struct handoff *, struct adopt_set *);
int	systemd_same_unit(pid_t);
int	systemd_applies(void);
/* systemd_notify for the handle: a failure is logged, not returned. */
void	hnotify(struct handoff *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
