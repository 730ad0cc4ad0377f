/*
 * hello-ci: prints a greeting.
 *
 * The example program of ubuntu-ci: small enough to read at a glance, yet compiled, tested
 * at build time and by autopkgtest, so that every step of the pipeline has real work to do.
 *
 * Copyright 2024 ubuntu-ci developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <stdio.h>
#include <string.h>

#ifndef VERSION
#define VERSION "unknown"
#endif

static void usage(FILE *out)
{
	fputs("Usage: hello-ci [--name NAME] [--version] [--help]\n"
	      "Print a greeting, addressed to NAME (default: world).\n",
	      out);
}

int main(int argc, char **argv)
{
	const char *name = "world";

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--version") == 0) {
			printf("hello-ci %s\n", VERSION);
			return fflush(stdout) == 0 ? 0 : 1;
		} else if (strcmp(arg, "--help") == 0) {
			usage(stdout);
			return fflush(stdout) == 0 ? 0 : 1;
		} else if (strcmp(arg, "--name") == 0) {
			if (i + 1 >= argc) {
				fputs("hello-ci: --name needs a value\n", stderr);
				usage(stderr);
				return 2;
			}
			name = argv[++i];
		} else if (strncmp(arg, "--name=", 7) == 0) {
			name = arg + 7;
		} else {
			fprintf(stderr, "hello-ci: unknown argument '%s'\n", arg);
			usage(stderr);
			return 2;
		}
	}

	if (name[0] == '\0') {
		fputs("hello-ci: the name must not be empty\n", stderr);
		return 2;
	}
	printf("Hello, %s! Greetings from ubuntu-ci.\n", name);
	/* A full disk or closed pipe must not pass for success. */
	return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}
