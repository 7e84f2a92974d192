/* Attestation example for plat-kvm-arm-rs (written for this project): the realm
 * takes a challenge from its boot arguments ("challenge=<hex, 32-64 bytes>"),
 * asks the platform for a CCA attestation token bound to it
 * (ukplat_realm_attestation_token: RSI_ATTESTATION_TOKEN_INIT/CONTINUE) and
 * prints it base64, 64 characters per "token-b64: " line, for
 * tools/verify-realm (docs/attestation.md). Exit status 0 when a token was
 * printed, 1 otherwise (not a realm, no or bad challenge, RMM error). */
#include <stdio.h>
#include <string.h>
#include <uk/config.h>
#define PLAT_KVM_ARM_REALM 1
#include <plat_kvm_arm.h>

/* The RMM's token is a few KiB (TF-RMM v0.8.0/v0.9.0 on QEMU: about 2.1 KiB). */
static unsigned char token[16384] __attribute__((aligned(4096)));

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses "challenge=HEX" into ch; returns its length in bytes or -1. */
static int parse_challenge(const char *hex, unsigned char ch[64])
{
	size_t n = strlen(hex), i;

	if (n % 2 || n < 64 || n > 128)
		return -1;
	for (i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		ch[i] = (unsigned char)(hi << 4 | lo);
	}
	return (int)(n / 2);
}

static void print_base64(const unsigned char *b, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char line[65];
	size_t i, k = 0;

	for (i = 0; i < n; i += 3) {
		unsigned int v = (unsigned int)b[i] << 16;

		if (i + 1 < n)
			v |= (unsigned int)b[i + 1] << 8;
		if (i + 2 < n)
			v |= b[i + 2];
		line[k++] = a[(v >> 18) & 63];
		line[k++] = a[(v >> 12) & 63];
		line[k++] = i + 1 < n ? a[(v >> 6) & 63] : '=';
		line[k++] = i + 2 < n ? a[v & 63] : '=';
		if (k == 64 || i + 3 >= n) {
			line[k] = '\0';
			printf("token-b64: %s\n", line);
			k = 0;
		}
	}
}

int main(int argc, char *argv[])
{
	unsigned char ch[64] = { 0 };
	size_t len = 0;
	int clen = -1, i, rc;

	if (!ukplat_realm_is_realm()) {
		printf("attest: not running in an Arm CCA realm: no token\n");
		return 1;
	}
	for (i = 1; i < argc; i++)
		if (!strncmp(argv[i], "challenge=", 10))
			clen = parse_challenge(argv[i] + 10, ch);
	if (clen < 0) {
		printf("attest: give the verifier's challenge as a boot argument: challenge=<64 to 128 hex digits>\n");
		return 1;
	}
	rc = ukplat_realm_attestation_token(ch, (size_t)clen, token, sizeof(token), &len);
	if (rc) {
		printf("attest: the RMM gave no token (error %d, %lu bytes needed)\n", rc,
		       (unsigned long)len);
		return 1;
	}
	printf("attest: token of %lu bytes for a %d-byte challenge (RSI %u.%u)\n",
	       (unsigned long)len, clen, ukplat_realm_rsi_revision() >> 16,
	       ukplat_realm_rsi_revision() & 0xffff);
	print_base64(token, len);
	printf("attest: done\n");
	return 0;
}
