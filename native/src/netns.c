#define _GNU_SOURCE
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct netns_call {
  const char *path;
  int (*fn)(void *arg);
  void *arg;
  int result;
  int entered;
  int saved_errno;
};

static void *netns_thread(void *p) {
  struct netns_call *call = p;
  int fd = open(call->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    call->saved_errno = errno;
    return NULL;
  }
  // setns(CLONE_NEWNET) affects only this thread, which exits right after.
  if (setns(fd, CLONE_NEWNET) != 0) {
    call->saved_errno = errno;
    close(fd);
    return NULL;
  }
  close(fd);
  call->entered = 1;
  call->result = call->fn(call->arg);
  return NULL;
}

int netns_run(const char *path, int (*fn)(void *arg), void *arg, char *err, size_t err_len) {
  if (!path) return fn(arg);
  struct netns_call call = {.path = path, .fn = fn, .arg = arg, .result = -1};
  pthread_t thread;
  int rc = pthread_create(&thread, NULL, netns_thread, &call);
  if (rc != 0) {
    snprintf(err, err_len, "cannot start a thread to enter network namespace %s: %s", path, strerror(rc));
    return -1;
  }
  pthread_join(thread, NULL);
  if (!call.entered) {
    snprintf(err, err_len, "cannot enter network namespace %s: %s", path, strerror(call.saved_errno));
    return -1;
  }
  return call.result;
}
