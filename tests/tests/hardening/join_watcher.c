/*
 * The container's half of join::exec_cannot_be_used_to_rewrite_skiff_through_proc_pid_exe.
 *
 * Polls the container's /proc in a tight loop for the process `skiff exec` puts into the
 * container (visible once it has joined the pid namespace; its cmdline is still skiff's,
 * "<...>victim-skiff exec ...", until its execve). It stops it with SIGSTOP (signals do not
 * depend on dumpability), makes sure it is still skiff once stopped, tries to open its
 * /proc/PID/exe, and lets it go on with SIGCONT. Then, holding the handle as fd 8 (if it got
 * one), it runs the shell script given as its argument; otherwise it reports that it has none.
 * Lines it prints: READY, "caught PID", "open: done" or "open: denied <reason>".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Whether PID's command line is "<...>victim-skiff exec ...": skiff before its execve. */
static int is_joiner(const char *pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%s/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    size_t a0 = strlen(buf);
    const char *name = "victim-skiff";
    size_t nl = strlen(name);
    if (a0 < nl || strcmp(buf + a0 - nl, name) != 0 || (ssize_t)a0 + 1 >= n)
        return 0;
    return strcmp(buf + a0 + 1, "exec") == 0;
}

/* PID's state letter from /proc/PID/stat, or 0 if it is gone. */
static char state(const char *pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        dprintf(2, "usage: watcher SCRIPT\n");
        return 2;
    }
    char self[32];
    snprintf(self, sizeof self, "%d", (int)getpid());
    dprintf(1, "READY\n");
    for (;;) {
        DIR *d = opendir("/proc");
        if (!d)
            return 1;
        struct dirent *e;
        while ((e = readdir(d))) {
            const char *pid = e->d_name;
            if (pid[0] < '1' || pid[0] > '9' || strcmp(pid, self) == 0 || !is_joiner(pid))
                continue;
            kill(atoi(pid), SIGSTOP);
            char c = 0;
            for (int i = 0; i < 1000000; i++) {
                c = state(pid);
                if (c == 'T' || c == 't' || c == 0)
                    break;
            }
            /* Stopped too late (already the command, or gone): let it be, watch on. */
            if ((c != 'T' && c != 't') || !is_joiner(pid)) {
                kill(atoi(pid), SIGCONT);
                continue;
            }
            dprintf(1, "caught %s\n", pid);
            char exe[64];
            snprintf(exe, sizeof exe, "/proc/%s/exe", pid);
            int fd = open(exe, O_RDONLY);
            if (fd >= 0)
                dprintf(1, "open: done\n");
            else
                dprintf(1, "open: denied %s\n", strerror(errno));
            kill(atoi(pid), SIGCONT);
            if (fd >= 0) {
                dup2(fd, 8);
                execl("/bin/sh", "sh", "-c", argv[1], (char *)0);
                dprintf(1, "write: not tried (no shell: %s)\n", strerror(errno));
                return 1;
            }
            dprintf(1, "write: denied (no handle)\n");
            execl("/bin/sh", "sh", "-c", "exec sleep 1000", (char *)0);
            return 1;
        }
        closedir(d);
    }
}
