/* pkv version: the CLI's and the library's version and the backends compiled in. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "patternkv.h"

int pkv_cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "pkv version: takes no arguments\n");
        return 2;
    }
    printf("pkv %s (library %s, header %s)\n", PKV_VERSION_STRING, pkv_version_string(), PKV_VERSION_STRING);
    printf("backends built in: cpu");
#ifdef PKV_CLI_WITH_VULKAN
    printf(", vulkan");
#endif
#ifdef PKV_CLI_WITH_OPENCL
    printf(", opencl");
#endif
    printf("\n");
    if (strcmp(pkv_version_string(), PKV_VERSION_STRING) != 0) {
        fprintf(stderr, "pkv version: warning: the library (%s) is not the version of the header (%s)\n",
                pkv_version_string(), PKV_VERSION_STRING);
    }
    return 0;
}
