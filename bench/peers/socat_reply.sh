#!/bin/sh
# socat_reply.sh once|line|udp -- what socat_server.py runs for each
# connection or datagram, on its stdin/stdout (socat's EXEC address).
#   once: the prefix, then exactly one read of up to 1024 bytes (dd count=1),
#         as the tutorial's recv(1024); EOF before data gives just the prefix.
#   line: sed prefixes every line; stdbuf -oL makes it write each answer at
#         once; sed keeps \r and answers a final unterminated line as is.
#   udp:  the reply must leave as one datagram, so it is gathered by one dd
#         (iflag=fullblock: until EOF) and written with one write.
case "$1" in
once) printf 'Received: '; exec dd bs=1024 count=1 status=none ;;
line) exec stdbuf -oL sed 's/^/Received: /' ;;
udp) { printf 'Received: '; dd bs=65536 count=1 status=none; } |
	exec dd bs=65546 count=1 iflag=fullblock status=none ;;
*) echo "usage: socat_reply.sh once|line|udp" >&2; exit 2 ;;
esac
