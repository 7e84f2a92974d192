/*
 * icount-range: a QEMU TCG plugin (plugin API >= 2) for tests/bench/uk-compare.
 * Like ../shared/tools/qemu-icount, it logs the running instruction count at
 * marked guest addresses, but it keeps two counts: all instructions, and only
 * those whose virtual address lies in [lo, hi). Under the vmm-model (an EL2
 * hypervisor at 0x40200000 running the guest at 0x80000000 and up, VA = IPA),
 * lo=0x80000000 separates the guest's own instructions from the model's.
 *
 *   -plugin ./libicount-range.so,lo=0x80000000,hi=0x100000000,mark=A,mark=B
 *   -d plugin -D log    ->  "ICOUNT mark=0x... all=N range=M"
 *
 * Only the plugin-API entry points used here are declared. Written for this
 * project.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
typedef struct {
	const char *target_name;
	struct { int min; int cur; } version;
	bool system_emulation;
	union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
struct qemu_plugin_scoreboard;
typedef struct { struct qemu_plugin_scoreboard *score; size_t offset; } qemu_plugin_u64;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, qemu_plugin_vcpu_tb_trans_cb_t);
void qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(struct qemu_plugin_tb *, enum qemu_plugin_op,
						       qemu_plugin_u64, uint64_t);
void qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(struct qemu_plugin_insn *,
							 enum qemu_plugin_op, qemu_plugin_u64,
							 uint64_t);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *, qemu_plugin_vcpu_udata_cb_t,
					    enum qemu_plugin_cb_flags, void *);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *);
struct qemu_plugin_scoreboard *qemu_plugin_scoreboard_new(size_t);
uint64_t qemu_plugin_u64_sum(qemu_plugin_u64);
void qemu_plugin_outs(const char *);

EXPORT int qemu_plugin_version = 4;

#define NMARK 8
static qemu_plugin_u64 all, in_range;
static uint64_t mark[NMARK], lo, hi = UINT64_MAX;
static int nmark, hits[NMARK], maxhits = 1;

static void on_mark(unsigned int vcpu, void *ud)
{
	int i = (int)(uintptr_t)ud;
	char line[160];

	(void)vcpu;
	if (hits[i]++ >= maxhits)
		return;
	snprintf(line, sizeof(line), "ICOUNT mark=0x%" PRIx64 " all=%" PRIu64 " range=%" PRIu64 "\n",
		 mark[i], qemu_plugin_u64_sum(all), qemu_plugin_u64_sum(in_range));
	qemu_plugin_outs(line);
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb);

	(void)id;
	qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(tb, QEMU_PLUGIN_INLINE_ADD_U64, all, n);
	for (size_t k = 0; k < n; k++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, k);
		uint64_t va = qemu_plugin_insn_vaddr(insn);

		if (va >= lo && va < hi)
			qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(
				insn, QEMU_PLUGIN_INLINE_ADD_U64, in_range, 1);
		for (int i = 0; i < nmark; i++)
			if (va == mark[i])
				qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark,
								       QEMU_PLUGIN_CB_NO_REGS,
								       (void *)(uintptr_t)i);
	}
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	(void)info;
	for (int i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "mark=", 5) && nmark < NMARK)
			mark[nmark++] = strtoull(argv[i] + 5, NULL, 0);
		else if (!strncmp(argv[i], "lo=", 3))
			lo = strtoull(argv[i] + 3, NULL, 0);
		else if (!strncmp(argv[i], "hi=", 3))
			hi = strtoull(argv[i] + 3, NULL, 0);
		else if (!strncmp(argv[i], "maxhits=", 8))
			maxhits = atoi(argv[i] + 8);
		else {
			fprintf(stderr, "icount-range: unknown argument %s\n", argv[i]);
			return -1;
		}
	}
	all.score = qemu_plugin_scoreboard_new(sizeof(uint64_t));
	in_range.score = qemu_plugin_scoreboard_new(sizeof(uint64_t));
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
	return 0;
}
