/* launch PROGRAM ARGS...: runs PROGRAM (output discarded) and prints its
 * peak resident set in KiB; exits 1 if it did not exit 0.
 *
 * fc-bench measures peak RSS through this, never from itself: Linux starts
 * a process's ru_maxrss at the resident set of the address space it had
 * before exec, which for a child of fc-bench is fc-bench's (many MiB). This
 * launcher is a few hundred KiB resident, and the suite shows that floor
 * (its /bin/true row). Built by benches/run.sh: cc -O2 -static. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: launch PROGRAM ARGS...\n");
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execvp(argv[1], argv + 1);
        _exit(127);
    }
    int status;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) != pid) {
        perror("wait4");
        return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return 1;
    }
    printf("%ld\n", usage.ru_maxrss);
    return 0;
}
