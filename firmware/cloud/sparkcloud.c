/* sparkcloud: a lab cloud for the Spark Core protocol. It speaks the server side of docs/protocol.md on
 * loopback so that sparkdev (or a real device pointed at it) can be exercised and captured, including
 * the server-side faults a diagnosis has to tell apart. It serves connections until stopped (or as many
 * as --once / --connections say), one process per connection (fork). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cloud.h"

#define MAX_RUNNING 256   /* connection handlers at once; more connections wait in the listen queue */

static volatile sig_atomic_t stop_flag;
static pid_t kids[MAX_RUNNING];
static size_t running;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int listen_on(void)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(sc_opt.host, sc_opt.port, &hints, &ai);
    if (gai != 0) {
        sw_err("listen address %s: %s", sc_opt.host, gai_strerror(gai));
        return -2;
    }
    int lfd = socket(ai->ai_family, SOCK_STREAM, 0);
    int one = 1;
    if (lfd >= 0)
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(lfd, 16) < 0) {
        sw_err("cannot listen on %s:%s: %s; is another cloud running there?", sc_opt.host, sc_opt.port,
               strerror(errno));
        freeaddrinfo(ai);
        if (lfd >= 0)
            close(lfd);
        return -1;
    }
    freeaddrinfo(ai);
    return lfd;
}

static void reap(void)
{
    pid_t p;
    while (running > 0 && (p = waitpid(-1, NULL, WNOHANG)) > 0) {
        running--;
        for (size_t i = 0; i < MAX_RUNNING; i++)
            if (kids[i] == p)
                kids[i] = 0;
    }
}

/* Accepts one connection and hands it to a new process. */
static void serve_one(int lfd, unsigned long num)
{
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    int fd = accept(lfd, (struct sockaddr *)&peer, &plen);
    if (fd < 0)
        return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char ph[64] = "?", pp[16] = "?";
    getnameinfo((struct sockaddr *)&peer, plen, ph, sizeof ph, pp, sizeof pp, NI_NUMERICHOST | NI_NUMERICSERV);
    sw_log("#%lu connection from %s:%s", num, ph, pp);
    pid_t pid = fork();
    if (pid == 0) {
        close(lfd);
        static conn c;
        memset(&c, 0, sizeof c);
        c.fd = fd;
        c.num = (int)num;
        c.accepted = sw_now_ms();
        sc_handle(&c);
        close(fd);
        CLOG(&c, "outcome: %s", c.outcome ? c.outcome : "device-closed");
        _exit(0);
    }
    close(fd);
    if (pid < 0) {
        sw_err("cannot start a connection handler: %s", strerror(errno));
        return;
    }
    for (size_t i = 0; i < MAX_RUNNING; i++)
        if (kids[i] == 0) {
            kids[i] = pid;
            break;
        }
    running++;
}

/* Serves until stopped, the time limit, or the connection count is reached and served. */
static int serve(int lfd)
{
    uint64_t t0 = sw_now_ms();
    unsigned long accepted = 0;
    for (;;) {
        reap();
        if (stop_flag) {
            sw_log("stopping");
            return 0;
        }
        if (sc_opt.time_limit_ms && sw_now_ms() - t0 >= sc_opt.time_limit_ms) {
            sw_log("time limit reached, exiting");
            return 1;
        }
        bool enough = sc_opt.connections && accepted >= sc_opt.connections;
        if (enough && running == 0)
            return 0;
        if (enough || running >= MAX_RUNNING) {
            usleep(20000);
            continue;
        }
        if (sw_wait_readable(lfd, 50) > 0)
            serve_one(lfd, ++accepted);
    }
}

int main(int argc, char **argv)
{
    sw_prog = "sparkcloud";
    int r = sc_parse_options(argc, argv);
    if (r >= 0)
        return r;
    int lfd = listen_on();
    if (lfd < 0)
        return lfd == -2 ? 2 : 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sw_log("listening on %s:%s", sc_opt.host, sc_opt.port);
    int status = serve(lfd);
    close(lfd);
    for (size_t i = 0; i < MAX_RUNNING; i++)
        if (kids[i] > 0)
            kill(kids[i], SIGTERM);   /* handlers still running at a time limit or stop */
    while (waitpid(-1, NULL, 0) > 0) {}
    free(sc_opt.ota_data);
    return status;
}
