#include "commands.h"

int main(int argc, char **argv) { return pkv_cli_main(argc, argv); }
