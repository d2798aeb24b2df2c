/* pkv's command dispatch (separate from main() so the tests can call it in-process). */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static void usage(FILE *f)
{
    fputs("usage: pkv <command> [options]\n"
          "commands:\n"
          "  version             versions and the backends built in\n"
          "  devices [--verbose] devices of every backend that loads here\n"
          "  bench [options]     fidelity, speed and memory report (pkv bench --help)\n"
          "  eval-model ...      perplexity of a small model with a compressed cache\n",
          f);
}

int pkv_cli_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) return pkv_cmd_version(argc - 1, argv + 1);
    if (strcmp(cmd, "devices") == 0) return pkv_cmd_devices(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) return pkv_cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "eval-model") == 0) return pkv_cmd_eval_model(argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "pkv: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
