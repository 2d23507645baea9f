/*
 * The program of the musl step image.  Debian packages no shell built against musl, so the musl
 * image gets this instead: a small program, dynamically linked against musl (its ELF interpreter is
 * /lib/ld-musl-x86_64.so.1), doing what the container tests' steps need.
 *
 *   steptool OP... where OP is one of
 *     write FILE TEXT    create or truncate FILE and write TEXT (a result: no trailing newline)
 *     append FILE TEXT   append TEXT and a newline to FILE (the pod test's order log)
 *     env                print the environment, one VAR=value a line
 *     exit N             exit with status N
 * Operations run in order; the first failure exits 1 with a message on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int put(const char *path, const char *text, int flags, int newline) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0666);
    if (fd < 0) return -1;
    int rc = write_all(fd, text, strlen(text));
    if (rc == 0 && newline) rc = write_all(fd, "\n", 1);
    if (close(fd) != 0) rc = -1;
    return rc;
}

static void usage(void) {
    fprintf(stderr, "usage: steptool (write FILE TEXT | append FILE TEXT | env | exit N)...\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc;) {
        const char *op = argv[i];
        if ((strcmp(op, "write") == 0 || strcmp(op, "append") == 0)) {
            if (i + 2 >= argc) usage();
            int appending = op[0] == 'a';
            if (put(argv[i + 1], argv[i + 2], appending ? O_APPEND : O_TRUNC, appending) != 0) {
                fprintf(stderr, "steptool: %s %s: %s\n", op, argv[i + 1], strerror(errno));
                return 1;
            }
            i += 3;
        } else if (strcmp(op, "env") == 0) {
            for (char **e = environ; *e; e++) puts(*e);
            i += 1;
        } else if (strcmp(op, "exit") == 0) {
            if (i + 1 >= argc) usage();
            fflush(stdout);
            return atoi(argv[i + 1]);
        } else {
            usage();
        }
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
