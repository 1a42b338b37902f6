/*
 * berth-reaper: `berth run --init`'s PID 1 (as tini is docker's): runs the command as its
 * child, forwards the signals it gets to it, reaps every orphan, and exits with the command's
 * status (128+N when a signal N ended it).
 *   berth-reaper [--] COMMAND ARG...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

static pid_t child;
static void forward(int sig) { if (child > 0) kill(child, sig); }

int main(int argc, char **argv) {
  int i = 1;
  if (i < argc && strcmp(argv[i], "--") == 0) i++;
  if (i >= argc) { fprintf(stderr, "berth-reaper: no command given\n"); return 125; }
  child = fork();
  if (child < 0) { fprintf(stderr, "berth-reaper: fork: %s\n", strerror(errno)); return 125; }
  if (child == 0) {
    execvp(argv[i], argv + i);
    int err = errno;
    fprintf(stderr, "berth-reaper: exec %s: %s\n", argv[i], strerror(err));
    _exit(err == ENOENT ? 127 : 126);
  }
  for (int s = 1; s < 32; s++)
    if (s != SIGKILL && s != SIGSTOP && s != SIGCHLD) signal(s, forward);
  for (;;) {
    int status;
    pid_t w = waitpid(-1, &status, 0);
    if (w < 0) { if (errno == EINTR) continue; return 1; }
    if (w == child) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
}
