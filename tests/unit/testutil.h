/* testutil.h -- assertions shared by the unit tests (include after cmocka.h). */
#ifndef SOCKIT_TESTUTIL_H
#define SOCKIT_TESTUTIL_H

#include "sockit.h"

/* Asserts a result >= 0 (an fd, a count), printing the code and its meaning. */
#define assert_ok(expr)                                                                            \
	do {                                                                                       \
		long long rc_ = (long long)(expr);                                                 \
		if (rc_ < 0)                                                                       \
			fail_msg("%s = %lld (%s)", #expr, rc_, sockit_strerror((int)rc_));         \
	} while (0)

#endif /* SOCKIT_TESTUTIL_H */
