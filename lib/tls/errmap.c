/* errmap.c -- OpenSSL's errors as sockit codes: the only place that reads OpenSSL's error queue. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "tls.h"

/* Why the certificate check failed, from the verify result. */
static int verify_code(long v)
{
	switch (v) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
	case X509_V_ERR_EMAIL_MISMATCH:
		return SOCKIT_TLS_EHOSTNAME;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return SOCKIT_TLS_EEXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return SOCKIT_TLS_ENOTYETVALID;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
		return SOCKIT_TLS_EUNKNOWNCA;
	default:
		return SOCKIT_TLS_EVERIFY;
	}
}

/* An SSL-library reason code (ours, or an alert the peer sent). */
static int reason_code(struct sockit_tls *t, int reason)
{
	switch (reason) {
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
		return verify_code(SSL_get_verify_result(t->ssl));
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return SOCKIT_TLS_ENOPEERCERT;
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return SOCKIT_TLS_ECERTREQUIRED;
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		return SOCKIT_TLS_ECERTREJECTED;
	/* A record header that is no TLS: a plaintext peer ("GET / ..."). */
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_UNKNOWN_PROTOCOL:
		return SOCKIT_TLS_ENOTTLS;
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
		return SOCKIT_TLS_EVERSION;
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return SOCKIT_TLS_ETRUNCATED;
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
	case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
	case SSL_R_NO_SUITABLE_KEY_SHARE:
	case SSL_R_TLSV1_ALERT_INSUFFICIENT_SECURITY:
		return SOCKIT_TLS_EHANDSHAKE;
	default:
		return SOCKIT_TLS_EPROTO;
	}
}

int sk_tls_result(struct sockit_tls *t, int ret)
{
	int rc;
	switch (SSL_get_error(t->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		t->want = SOCKIT_READABLE;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		t->want = SOCKIT_WRITABLE;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		rc = 0;
		break;
	case SSL_ERROR_SYSCALL:
		/* The BIO's own error; an EOF OpenSSL did not call unexpected. */
		rc = t->sys_err < 0 ? t->sys_err
		     : t->eof	    ? SOCKIT_TLS_ETRUNCATED
				    : SOCKIT_TLS_EPROTO;
		t->failed = rc;
		break;
	case SSL_ERROR_SSL: {
		unsigned long e = ERR_peek_error();
		rc = ERR_GET_LIB(e) == ERR_LIB_SSL ? reason_code(t, ERR_GET_REASON(e))
						   : SOCKIT_TLS_EPROTO;
		t->failed = rc;
		break;
	}
	default:
		rc = SOCKIT_TLS_EPROTO;
		t->failed = rc;
		break;
	}
	ERR_clear_error();
	return rc;
}

int sk_tls_load_error(int fallback)
{
	int rc = fallback;
	unsigned long e;
	while ((e = ERR_get_error()) != 0) {
		if (ERR_SYSTEM_ERROR(e)) {
			rc = -(int)ERR_GET_REASON(e); /* ENOENT, EACCES: the file itself */
			break;
		}
		if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
		    (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
		     ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH)) {
			rc = SOCKIT_TLS_EKEYMISMATCH;
			break;
		}
	}
	ERR_clear_error();
	return rc;
}
