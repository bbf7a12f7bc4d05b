/* Runs a command and prints its peak resident size in kB (wait4's ru_maxrss) on stderr's last line, its
 * stdout passed through. Small on purpose: the kernel counts the memory of the process that forked as the
 * child's until it executes the command, so a large parent (a Python interpreter) would hide a small
 * command's own peak. Exit status: the command's (125 when it could not run). */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: peak-rss COMMAND [ARG...]\n");
        return 125;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("peak-rss: fork");
        return 125;
    }
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        perror("peak-rss: exec");
        _exit(125);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("peak-rss: wait4");
        return 125;
    }
    fprintf(stderr, "peak-rss-kb %ld\n", ru.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 125;
}
