/* Runs a command and prints its peak RSS (KiB) on fd 3.
 *
 * The benchmark cannot read a child's peak memory directly: a process started from the large
 * Python benchmark inherits the benchmark's memory high-water mark until it execs.  Forking from
 * this small program instead makes ru_maxrss reflect the command alone. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 127;
    pid_t pid = fork();
    if (pid < 0) return 127;
    if (pid == 0) {
        execv(argv[1], argv + 1);
        _exit(127);
    }
    int status;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) < 0) return 127;
    dprintf(3, "%ld\n", usage.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
