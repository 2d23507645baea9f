/* The `entrypoint` executable of the packaged build (see tools/build_binary.py).
 *
 * A static program: step images may have no C library, or musl, or another glibc.  It runs the
 * bundle's own CPython through the bundle's own glibc dynamic loader, found next to this file:
 *
 *   <dir>/entrypoint                        this launcher
 *   <dir>/entrypoint-runtime/ld-linux-x86-64.so.2, lib/, python, python._pth, ...
 *
 * Nothing is unpacked and the environment is passed on untouched, so the step's command inherits
 * the step's own environment: the loader gets the bundle's libraries from --library-path (which
 * also overrides any LD_LIBRARY_PATH of the step, for this process only), and python._pth makes
 * the interpreter isolated from the step's PYTHON* variables.
 *
 * Two modes:
 *   entrypoint ARGS...            the entrypoint itself; sys.argv is [argv[0], ARGS...]
 *   entrypoint --python ARGS...   the bare interpreter, for the entrypoint's helper processes
 *                                 (entrypoint/_internal/selfexec.py).  Only argv[1] switches:
 *                                 Tekton never passes "--python" first (its Go entrypoint would
 *                                 reject it as an undefined flag), and a "--python" later on the
 *                                 command line, for instance after "--", is the step's.
 * Either way the interpreter gets -X entrypoint_launcher=<this file>, so that it can start
 * helpers (and copy the bundle in `init`) without guessing where it lives.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUNTIME "entrypoint-runtime"
#define LOADER "ld-linux-x86-64.so.2"

/* A short program, not a script file: no extra file to open and stat at every start. */
static const char run_code[] =
    "import sys; del sys.argv[0]; from entrypoint.cli import run; run()";

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *out = malloc(la + lb + 1);
    if (out == NULL) {
        fputs("entrypoint: out of memory\n", stderr);
        exit(127);
    }
    memcpy(out, a, la);
    memcpy(out + la, b, lb + 1);
    return out;
}

int main(int argc, char **argv) {
    char self[PATH_MAX];
    /* /proc/self/exe, not argv[0]: a step may start us through PATH or a symlink.  Without /proc
     * a path in argv[0] (Tekton always runs /tekton/bin/entrypoint) still finds the bundle. */
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    int err = errno;
    if (n > 0 && (size_t)n < sizeof self - 1) {
        self[n] = '\0';
    } else if (argc < 1 || strchr(argv[0], '/') == NULL || realpath(argv[0], self) == NULL) {
        fprintf(stderr, "entrypoint: cannot find this executable: /proc/self/exe: %s\n",
                n < 0 ? strerror(err) : "path too long");
        return 127;
    }
    char *slash = strrchr(self, '/');
    if (slash == NULL) {
        fprintf(stderr, "entrypoint: /proc/self/exe is not a path: %s\n", self);
        return 127;
    }
    *slash = '\0';
    char *runtime = join(self, "/" RUNTIME "/");
    *slash = '/';

    char *loader = join(runtime, LOADER);
    char *libs = join(runtime, "lib");
    char *python = join(runtime, "python");
    char *xoption = join("entrypoint_launcher=", self);

    int bare = argc >= 2 && strcmp(argv[1], "--python") == 0;
    /* loader, --library-path, libs, --inhibit-cache, python, -B, -X, option, [-I, -c, code, argv0] */
    char **args = calloc((size_t)argc + 16, sizeof *args);
    if (args == NULL) {
        fputs("entrypoint: out of memory\n", stderr);
        return 127;
    }
    int k = 0;
    args[k++] = loader;
    args[k++] = "--library-path";
    args[k++] = libs;
    /* The step image's /etc/ld.so.cache lists its own libraries, never ours. */
    args[k++] = "--inhibit-cache";
    args[k++] = python;
    /* Never write byte-code into the bundle (it ships its own, and /tekton/bin is writable). */
    args[k++] = "-B";
    args[k++] = "-X";
    args[k++] = xoption;
    if (bare) {
        for (int i = 2; i < argc; i++) args[k++] = argv[i];
    } else {
        args[k++] = "-I";
        args[k++] = "-c";
        args[k++] = (char *)run_code;
        /* sys.argv[0] must be our argv[0]: Go's flag usage text prints it. */
        if (argc < 1) args[k++] = "entrypoint";
        for (int i = 0; i < argc; i++) args[k++] = argv[i];
    }
    args[k] = NULL;
    execv(loader, args);
    fprintf(stderr, "entrypoint: cannot run %s: %s (the directory " RUNTIME
            " must be next to this executable)\n", loader, strerror(errno));
    return 127;
}
