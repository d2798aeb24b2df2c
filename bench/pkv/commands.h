/* The pkv subcommands. Each takes the arguments after its own name (argv[0] is the subcommand)
 * and returns the process exit status: 0 on success, 1 on a runtime error, 2 on a usage error. */
#ifndef PKV_CLI_COMMANDS_H
#define PKV_CLI_COMMANDS_H

int pkv_cmd_version(int argc, char **argv);
int pkv_cmd_devices(int argc, char **argv);
int pkv_cmd_bench(int argc, char **argv);
int pkv_cmd_eval_model(int argc, char **argv); /* bench/model */

/* The whole command line (argv[0] is the program name); what main() calls. */
int pkv_cli_main(int argc, char **argv);

#endif
