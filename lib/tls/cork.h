/* cork.h -- a session's writes kept and sent together, its reads taken in
 * bulk: internal to sockit (serve's once mode), not installed.
 *
 * A TLS once exchange writes four times: the handshake's flight, the
 * session ticket (at the handshake's end), the reply's record and the
 * close_notify.  Corked, the last three are kept and go out in one send,
 * so the FIN rides with them: one segment instead of four for the client's
 * stack to take in (each one on loopback also costs the sender's CPU). */
#ifndef SOCKIT_TLS_CORK_H
#define SOCKIT_TLS_CORK_H

#include <stddef.h>

#include "sockit_tls.h"

/* Writes larger than this together are not kept: what is kept goes first. */
#define SK_TLS_CORK_MAX 16384

/* From now on what OpenSSL writes on t is kept, not sent, until
 * sk_tls_uncork() (up to SK_TLS_CORK_MAX bytes together).  No effect while
 * bytes of an earlier uncork still wait. */
void sk_tls_cork(sockit_tls *t);

/* Sends what t keeps, in one send (flags: MSG_MORE when the caller's FIN
 * follows at once, else 0), and stops keeping.  0 when it all went;
 * -EAGAIN when some waits (sockit_tls_want() then says SOCKIT_WRITABLE,
 * and the session's next read or write sends it first); or -errno. */
int sk_tls_uncork(sockit_tls *t, int flags);

/* 1 if what t keeps may wait while its owner waits for the peer's input:
 * after a TLS 1.3 handshake, what it keeps is session tickets, which a
 * client never waits for before it speaks.  (In TLS 1.2 the server's last
 * flight must reach the client before it may send.) */
int sk_tls_may_keep_while_reading(const sockit_tls *t);

/* The bytes t still keeps (*len of them), for a caller that sends them
 * itself before sockit_tls_free(); valid until the next call on t. */
const char *sk_tls_kept(const sockit_tls *t, size_t *len);

/* From now on t reads what the socket holds at once, not record by record
 * (OpenSSL reads a record's 5-byte header, then its body: two system calls
 * a record, and a TLS once exchange reads five records or more).  Then
 * sockit_tls_pending() no longer counts records read but not yet opened:
 * only for a caller that reads until -EAGAIN before it waits. */
void sk_tls_read_ahead(sockit_tls *t);

#endif /* SOCKIT_TLS_CORK_H */
