/* A server for the ports tests, run inside a container: it says who it sees as the peer.
 *   peer tcp PORT   each connection gets "peer ADDR:PORT\n" and is closed
 *   peer udp PORT   each datagram D from ADDR:PORT gets "peer ADDR:PORT D" back
 * (busybox-static has no UDP server, and its TCP servers do not show the peer.) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: peer tcp|udp PORT\n");
        return 2;
    }
    int udp = strcmp(argv[1], "udp") == 0;
    int s = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || (!udp && listen(s, 16) != 0)) {
        perror("peer");
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        char in[2048], out[2200];
        if (udp) {
            ssize_t n = recvfrom(s, in, sizeof in - 1, 0, (struct sockaddr *)&from, &len);
            if (n < 0)
                continue;
            in[n] = 0;
            int m = snprintf(out, sizeof out, "peer %s:%d %s", inet_ntoa(from.sin_addr),
                             ntohs(from.sin_port), in);
            sendto(s, out, m, 0, (struct sockaddr *)&from, len);
        } else {
            int c = accept(s, (struct sockaddr *)&from, &len);
            if (c < 0)
                continue;
            int m = snprintf(out, sizeof out, "peer %s:%d\n", inet_ntoa(from.sin_addr),
                             ntohs(from.sin_port));
            if (write(c, out, m) < 0)
                perror("write");
            close(c);
        }
    }
}
