/* What each system call of opening and closing an existing object costs here; the last two
 * lines are the raw reference sequence and the calls namedmutex makes (without getpid).
 * mkdir -p /dev/shm/proftest && gcc -O2 -o /tmp/sc open_syscalls.c && /tmp/sc; rm -r /dev/shm/proftest
 * (a forked helper holds a shared flock; it dies with the program) */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <signal.h>
#include <time.h>
#include <pthread.h>
#include <stdatomic.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
#define N 200000
int main(){
  int dfd=open("/dev/shm/proftest",O_RDONLY|O_DIRECTORY); if(dfd<0){perror("dir");return 1;}
  int hold=openat(dfd,"obj",O_RDWR|O_CREAT,0600); ftruncate(hold,4096); flock(hold,LOCK_SH);
  if(fork()==0){ /* another process holding a shared lock */ prctl(PR_SET_PDEATHSIG,SIGKILL); int f=openat(dfd,"obj",O_RDWR); flock(f,LOCK_SH); pause(); }
  usleep(100000);
  double t; int fd; struct stat st; void*p;
  for(int rep=0;rep<3;rep++){
  t=now(); for(int i=0;i<N;i++){fd=openat(dfd,"obj",O_RDWR|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK); close(fd);} printf("openat+close      %6.0f ns\n",(now()-t)/N);
  fd=openat(dfd,"obj",O_RDWR);
  t=now(); for(int i=0;i<N;i++){fstat(fd,&st);} printf("fstat             %6.0f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){syscall(SYS_getpid);} printf("getpid            %6.0f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){p=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0); munmap(p,4096);} printf("mmap+munmap       %6.0f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){p=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0); (void)*(volatile long*)p; munmap(p,4096);} printf("mmap+touch+munmap %6.0f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){p=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_POPULATE,fd,0); (void)*(volatile long*)p; munmap(p,4096);} printf("mmap POPULATE+touch+munmap %6.0f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){flock(fd,LOCK_EX|LOCK_NB);} printf("flock EX|NB fail  %6.0f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){flock(fd,LOCK_SH|LOCK_NB);flock(fd,LOCK_UN);} printf("flock SH + UN     %6.0f ns\n",(now()-t)/N);
  close(fd);
  t=now(); for(int i=0;i<N;i++){fd=openat(dfd,"obj",O_RDWR|O_CLOEXEC); p=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0); flock(fd,LOCK_SH|LOCK_NB); munmap(p,4096); close(fd);} printf("RAW seq           %6.0f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){fd=openat(dfd,"obj",O_RDWR|O_CLOEXEC); fstat(fd,&st); p=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0); (void)*(volatile long*)p; flock(fd,LOCK_EX|LOCK_NB); flock(fd,LOCK_SH|LOCK_NB); flock(fd,LOCK_EX|LOCK_NB); munmap(p,4096); close(fd);} printf("NM syscalls (no getpid) %6.0f ns\n",(now()-t)/N);
  }
  return 0;
}
