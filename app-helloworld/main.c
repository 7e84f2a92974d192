/* Hello world for plat-kvm-arm-rs on Unikraft 0.17 to 0.21 (written for this project).
 * With SMP (CONFIG_UKPLAT_LCPU_MAXCOUNT > 1; 0.21: CONFIG_UKPLAT_CPU_MAXCOUNT) it
 * also starts the secondary CPUs and has each run a function through the RUN IPI
 * (0.17-0.20: ukplat_lcpu_*; 0.21: lib/uklcpu's uk_lcpu_*).
 * With the argument "console-reentry=ADDR" it writes 64 bytes from ADDR straight to
 * the platform console, ADDR chosen by the test so that the read faults midway:
 * Unikraft's trap handler then prints while the console is held (a re-entry test). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uk/config.h>
#if CONFIG_LIBUKCONSOLE
#include <uk/console.h>
#define console_write(b, n) uk_console_out((b), (n))
#else
#include <uk/plat/console.h>
#define console_write(b, n) ukplat_coutk((b), (n))
#endif

#if CONFIG_HAVE_SMP && CONFIG_LIBUKLCPU
/* Unikraft 0.21: the CPUs the interrupt controller found in the device tree are
 * the per-CPU slots whose uk_pcpuvar_cpu_idx is their index (slot 0: this CPU). */
#include <uk/essentials.h>
#include <uk/lcpu.h>
#include <uk/lcpu/pm.h>
#include <uk/pcpuvar.h>
#include <uk/plat/time.h>

#define SMP_STACK_SIZE 16384
static char smp_stacks[CONFIG_UKPLAT_CPU_MAXCOUNT][SMP_STACK_SIZE] __align(16);
static volatile int smp_ran[CONFIG_UKPLAT_CPU_MAXCOUNT];

static void smp_fn(struct uk_lcpu_regs *regs __unused, void *arg __unused)
{
	smp_ran[uk_pcpuvar_current_get(uk_pcpuvar_cpu_idx)] = 1;
}

static void smp_check(void)
{
	struct uk_lcpu_func fn = { .fn = smp_fn, .user = NULL };
	__u64 idx[CONFIG_UKPLAT_CPU_MAXCOUNT], sp[CONFIG_UKPLAT_CPU_MAXCOUNT];
	unsigned int n = 0, num, i, ran = 0;
	__nsec deadline;
	int rc;

	for (i = 1; i < CONFIG_UKPLAT_CPU_MAXCOUNT; i++) {
		if (uk_pcpuvar_lval(i, uk_pcpuvar_cpu_idx) != i)
			continue;
		idx[n] = i;
		sp[n] = (__u64)(smp_stacks[i] + SMP_STACK_SIZE);
		n++;
	}
	if (n == 0) {
		printf("SMP: 1 CPU\n");
		return;
	}
	num = n;
	rc = uk_lcpu_start(idx, &num, sp, NULL, 0);
	if (rc) {
		printf("SMP: uk_lcpu_start failed: %d (%u started)\n", rc, num);
		return;
	}
	num = n;
	rc = uk_lcpu_wait(idx, &num, 1000000000ULL);
	if (rc) {
		printf("SMP: secondaries did not reach idle: %d\n", rc);
		return;
	}
	num = n;
	rc = uk_lcpu_run(idx, &num, &fn, 0);
	if (rc) {
		printf("SMP: uk_lcpu_run failed: %d\n", rc);
		return;
	}
	deadline = ukplat_monotonic_clock() + 1000000000ULL;
	do {
		for (ran = 0, i = 0; i < n; i++)
			ran += smp_ran[idx[i]];
	} while (ran < n && ukplat_monotonic_clock() < deadline);
	printf("SMP: %u CPUs, %u secondaries started and ran a function\n", n + 1, ran);
}
#elif CONFIG_HAVE_SMP
#include <uk/essentials.h>
#include <uk/plat/lcpu.h>
#include <uk/plat/time.h>

#define SMP_STACK_SIZE 16384
static char smp_stacks[CONFIG_UKPLAT_LCPU_MAXCOUNT][SMP_STACK_SIZE] __align(16);
static volatile int smp_ran[CONFIG_UKPLAT_LCPU_MAXCOUNT];

static void smp_fn(struct __regs *regs __unused, void *arg __unused)
{
	smp_ran[ukplat_lcpu_idx()] = 1;
}

static void smp_check(void)
{
	struct ukplat_lcpu_func fn = { .fn = smp_fn, .user = NULL };
	void *sp[CONFIG_UKPLAT_LCPU_MAXCOUNT];
	unsigned int n = ukplat_lcpu_count(), i, ran = 0;
	__nsec deadline;
	int rc;

	if (n < 2) {
		printf("SMP: 1 CPU\n");
		return;
	}
	for (i = 0; i < n - 1; i++)
		sp[i] = smp_stacks[i + 1] + SMP_STACK_SIZE;
	rc = ukplat_lcpu_start(NULL, NULL, sp, NULL, 0);
	if (rc) {
		printf("SMP: ukplat_lcpu_start failed: %d\n", rc);
		return;
	}
	rc = ukplat_lcpu_wait(NULL, NULL, 1000000000ULL);
	if (rc) {
		printf("SMP: secondaries did not reach idle: %d\n", rc);
		return;
	}
	rc = ukplat_lcpu_run(NULL, NULL, &fn, 0);
	if (rc) {
		printf("SMP: ukplat_lcpu_run failed: %d\n", rc);
		return;
	}
	deadline = ukplat_monotonic_clock() + 1000000000ULL;
	do {
		for (ran = 0, i = 1; i < n; i++)
			ran += smp_ran[i];
	} while (ran < n - 1 && ukplat_monotonic_clock() < deadline);
	printf("SMP: %u CPUs, %u secondaries started and ran a function\n", n, ran);
}
#endif

int main(int argc, char *argv[])
{
	int i;

	printf("Hello world!\n");
	for (i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "console-reentry=", 16)) {
			const char *p = (const char *)strtoul(argv[i] + 16, NULL, 0);

			printf("console re-entry test: writing from %p\n", p);
			console_write(p, 64);
			printf("console re-entry test: no fault\n");
			continue;
		}
		printf("arg %d: %s\n", i, argv[i]);
	}
#if CONFIG_HAVE_SMP
	smp_check();
#endif
	return 0;
}
