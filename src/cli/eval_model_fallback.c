/* Compiled when src/cli/eval_model.c is absent: the command exists but says it is not built. */
#include <stdio.h>

#include "commands.h"

int pkv_cmd_eval_model(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "pkv eval-model: not built (src/cli/eval_model.c was not present when pkv was built)\n");
    return 2;
}
