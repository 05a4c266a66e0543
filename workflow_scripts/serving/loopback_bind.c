/* Preloaded (LD_PRELOAD) into NVIDIA Dynamo's processes: a bind() to the wildcard address (0.0.0.0 or ::)
 * becomes a bind() to loopback (127.0.0.1 or ::1), so that no listener is reachable from other machines.
 * Dynamo's KServe gRPC frontend (ai-dynamo 1.6) binds its gRPC and metrics ports to 0.0.0.0 and offers no
 * setting for that address. Every other bind() is passed through unchanged. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_function)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *address, socklen_t length) {
    static bind_function real_bind;
    if (!real_bind) real_bind = (bind_function)dlsym(RTLD_NEXT, "bind");
    if (address && address->sa_family == AF_INET && length >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in loopback;
        memcpy(&loopback, address, sizeof loopback);
        if (loopback.sin_addr.s_addr == htonl(INADDR_ANY)) loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return real_bind(fd, (const struct sockaddr *)&loopback, sizeof loopback);
    }
    if (address && address->sa_family == AF_INET6 && length >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 loopback;
        memcpy(&loopback, address, sizeof loopback);
        if (IN6_IS_ADDR_UNSPECIFIED(&loopback.sin6_addr)) loopback.sin6_addr = in6addr_loopback;
        return real_bind(fd, (const struct sockaddr *)&loopback, sizeof loopback);
    }
    return real_bind(fd, address, length);
}
