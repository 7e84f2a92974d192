/*
 * A QEMU TCG plugin (plugin API v4, QEMU >= 9) for the realm benchmark: counts only
 * the instructions executed in a guest address range (the guest image under the
 * EL2 machine model), so a trap's EL2 handling is left out, and logs that count
 * the first time each marked instruction runs.
 *
 *   -plugin ./libicount-guest.so,range=0xLO:0xHI,mark=0xVADDR,... -d plugin -D LOG
 *
 * Log lines: "GUEST mark=0x... insns=N". Only the plugin API functions used here are
 * declared (the API's public C interface).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API __attribute__((visibility("default")))
#define NMARKS 32

typedef uint64_t plugin_id;
struct tb;
struct insn;
struct scoreboard;
typedef struct { struct scoreboard *score; size_t offset; } u64_entry;
typedef struct {
	const char *target_name;
	struct { int min; int cur; } version;
	bool system_emulation;
	union { struct { int smp_vcpus; int max_vcpus; } system; };
} plugin_info;

void qemu_plugin_register_vcpu_tb_trans_cb(plugin_id, void (*)(plugin_id, struct tb *));
void qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(struct tb *, int op, u64_entry, uint64_t);
void qemu_plugin_register_vcpu_insn_exec_cb(struct insn *, void (*)(unsigned int, void *), int, void *);
size_t qemu_plugin_tb_n_insns(const struct tb *);
struct insn *qemu_plugin_tb_get_insn(const struct tb *, size_t);
uint64_t qemu_plugin_insn_vaddr(const struct insn *);
struct scoreboard *qemu_plugin_scoreboard_new(size_t);
uint64_t qemu_plugin_u64_sum(u64_entry);
void qemu_plugin_outs(const char *);

API int qemu_plugin_version = 4;

static u64_entry count;
static uint64_t lo, hi, mark[NMARKS];
static int nmark, seen[NMARKS];

static void on_mark(unsigned int vcpu, void *arg)
{
	int i = (int)(uintptr_t)arg;
	char line[96];

	(void)vcpu;
	if (__atomic_exchange_n(&seen[i], 1, __ATOMIC_RELAXED))
		return;
	snprintf(line, sizeof(line), "GUEST mark=0x%" PRIx64 " insns=%" PRIu64 "\n",
		 mark[i], qemu_plugin_u64_sum(count));
	qemu_plugin_outs(line);
}

static void on_tb(plugin_id id, struct tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb), k;
	uint64_t va = qemu_plugin_insn_vaddr(qemu_plugin_tb_get_insn(tb, 0));

	(void)id;
	if (va < lo || va >= hi)
		return;
	qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(tb, 0 /* inline add */, count, n);
	for (k = 0; k < n; k++) {
		struct insn *in = qemu_plugin_tb_get_insn(tb, k);
		for (int i = 0; i < nmark; i++)
			if (qemu_plugin_insn_vaddr(in) == mark[i])
				qemu_plugin_register_vcpu_insn_exec_cb(in, on_mark, 0, (void *)(uintptr_t)i);
	}
}

API int qemu_plugin_install(plugin_id id, const plugin_info *info, int argc, char **argv)
{
	(void)info;
	for (int i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "range=", 6)) {
			char *colon;
			lo = strtoull(argv[i] + 6, &colon, 0);
			hi = *colon == ':' ? strtoull(colon + 1, NULL, 0) : 0;
		} else if (!strncmp(argv[i], "mark=", 5) && nmark < NMARKS) {
			mark[nmark++] = strtoull(argv[i] + 5, NULL, 0);
		} else {
			fprintf(stderr, "icount-guest: bad argument %s\n", argv[i]);
			return -1;
		}
	}
	if (hi <= lo) {
		fprintf(stderr, "icount-guest: range=LO:HI required\n");
		return -1;
	}
	count.score = qemu_plugin_scoreboard_new(sizeof(uint64_t));
	count.offset = 0;
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
	return 0;
}
