/*
 * rejection-search: find root keys whose SPIKE coefficient chain draws a
 * SHA-256 block >= n (the P-256 group order) on its first or second draw.
 *
 * Such a block is skipped by the splitter, so vectors built from these keys
 * are the only ones that exercise rejection sampling. The probability per
 * block is about 2^-32, so this walks one long chain
 *     B(0) = SHA256(label), B(k+1) = SHA256(B(k))
 * until some B(k) >= n. Then
 *     rk = B(k-1): SHA256(rk) = B(k) is rejected on the first draw;
 *     rk = B(k-2): SHA256(rk) = B(k-1) is accepted, B(k) is rejected on the second.
 * Results are recorded in Vectors/reference/rejection-seeds.json, so this
 * runs once. Build: cc -O2 -o rejection-search tools/rejection-search.c -lcrypto
 * (about 15 million steps a second per core with SHA-NI)
 * Usage: rejection-search LABEL
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>

static const unsigned char order[32] = {
    0xff,0xff,0xff,0xff,0x00,0x00,0x00,0x00,0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xff,
    0xbc,0xe6,0xfa,0xad,0xa7,0x17,0x9e,0x84,0xf3,0xb9,0xca,0xc2,0xfc,0x63,0x25,0x51};

/* SHA-256 of exactly 32 bytes: one compression of the padded block (the
 * one-shot SHA256() costs five times more per call in OpenSSL 3). */
static inline void sha256_32(const unsigned char *in, unsigned char *out) {
    SHA256_CTX c;
    unsigned char block[64] = {0};
    SHA256_Init(&c);
    memcpy(block, in, 32);
    block[32] = 0x80;          /* padding bit */
    block[62] = 0x01;          /* message length: 256 bits, big-endian */
    SHA256_Transform(&c, block);
    for (int i = 0; i < 8; i++) {
        uint32_t w = c.h[i];
        out[4 * i] = w >> 24; out[4 * i + 1] = w >> 16; out[4 * i + 2] = w >> 8; out[4 * i + 3] = w;
    }
}

static void hex(const char *tag, const unsigned char *b) {
    printf("%s ", tag);
    for (int i = 0; i < 32; i++) printf("%02x", b[i]);
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: rejection-search LABEL\n"); return 2; }
    unsigned char ring[3][32];
    SHA256((const unsigned char *)argv[1], strlen(argv[1]), ring[0]);
    uint64_t k = 0;
    for (;;) {
        unsigned char *cur = ring[k % 3];
        unsigned char *next = ring[(k + 1) % 3];
        sha256_32(cur, next);
        k++;
        if (next[0] == 0xff && next[1] == 0xff && next[2] == 0xff && next[3] == 0xff
            && memcmp(next, order, 32) >= 0) {
            printf("label %s\nstep %llu\n", argv[1], (unsigned long long)k);
            hex("rejected_block", next);
            hex("first_draw_root_key", ring[(k + 2) % 3]);   /* B(k-1) */
            hex("second_draw_root_key", ring[(k + 1) % 3]);  /* B(k-2) */
            fflush(stdout);
            return 0;
        }
        if ((k & ((1ull << 28) - 1)) == 0) { fprintf(stderr, "%llu steps\n", (unsigned long long)k); }
    }
}
