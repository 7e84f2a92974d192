/* Hello world for plat-kvm-arm-rs on Unikraft 0.17 (written for this project). */
#include <stdio.h>

int main(int argc, char *argv[])
{
	int i;

	printf("Hello world!\n");
	for (i = 1; i < argc; i++)
		printf("arg %d: %s\n", i, argv[i]);
	return 0;
}
