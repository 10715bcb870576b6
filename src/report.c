/*
 * report: what an incumbent says of itself: the status report (state,
 * listeners, generations draining) and the count of connections that
 * released, progress and stopping carry.
 */
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#include "handoff-int.h"
#include "message.h"
#include "wire.h"

/*
 * "connections", and "counted": false when the application does not
 * count them (handoff-exec): the 0 then means nothing, and a reader
 * must not say "0 connections".
 */
int
report_connections(struct handoff *h, json_t *m)
{
	if (json_object_set_new(m, "connections",
	    json_integer(hcount(h))) == -1)
		return -1;
	if (h->count_cb == NULL && json_object_set_new(m, "counted",
	    json_false()) == -1)
		return -1;
	return 0;
}

json_t *
report_build(struct handoff *h)
{
	static const char *const names[] = {
		[HS_NEW] = "starting", [HS_STARTED] = "starting",
		[HS_WAITING] = "starting", [HS_SERVING] = "serving",
		[HS_OFFERING] = "offering", [HS_DRAINING] = "draining",
		[HS_STOPPING] = "stopping", [HS_FAILED] = "starting",
	};
	const char	*row[MSG_NCOLUMNS];
	json_t		*r, *list;
	char		*text;
	size_t		 i, bytes;

	r = msg_new("report");
	if (r == NULL || json_object_set_new(r, "listeners",
	    list = json_array()) == -1 || list == NULL ||
	    json_object_set_new(r, "count",
	    json_integer((json_int_t)hentries(h))) == -1 ||
	    json_object_set_new(r, "pid", json_integer(getpid())) == -1 ||
	    json_object_set_new(r, "generation",
	    json_integer(h->generation)) == -1 ||
	    json_object_set_new(r, "tag", json_string(h->tag)) == -1 ||
	    json_object_set_new(r, "state",
	    json_string(names[h->hstate])) == -1 ||
	    report_connections(h, r) == -1 ||
	    json_object_set_new(r, "predecessor",
	    json_integer(h->predecessor)) == -1 ||
	    json_object_set_new(r, "successor", h->successor != NULL ?
	    json_integer(h->successor->pid) : json_null()) == -1 ||
	    json_object_set_new(r, "draining", chain_drainers(h)) == -1 ||
	    (text = msg_encode(r, &bytes)) == NULL)
		goto bad;
	free(text);
	/* As many entries as fit beside the rest, measured; "count" says
	 * how many there are. */
	for (i = 0; i < hentries(h); i++) {
		hlistener_cells(hentry(h, i), row);
		bytes += msg_entry_len(row) + 1;
		if (bytes > WIRE_MAX_MSG)
			break;
		if (json_array_append_new(list, msg_entry(row)) == -1)
			goto bad;
	}
	return r;
bad:
	json_decref(r);		/* and list, which it holds */
	return NULL;
}
