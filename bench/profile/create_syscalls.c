/* Creating a file: O_TMPFILE + linkat through /proc/self/fd (what namedmutex does) against
 * O_CREAT|O_EXCL under the final name, and the other calls of a fresh create.
 * mkdir -p /dev/shm/proftest2 && gcc -O2 -o /tmp/fr create_syscalls.c && /tmp/fr; rm -r /dev/shm/proftest2 */
#define _GNU_SOURCE
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
#define N 100000
int main(){
  int dfd=open("/dev/shm/proftest2",O_RDONLY|O_DIRECTORY); char name[64], proc[64]; double t; struct stat st;
  for(int rep=0;rep<3;rep++){
  t=now(); for(int i=0;i<N;i++){ int fd=openat(dfd,".",O_TMPFILE|O_RDWR|O_CLOEXEC,0600); snprintf(proc,64,"/proc/self/fd/%d",fd); sprintf(name,"a%d",i); linkat(AT_FDCWD,proc,dfd,name,AT_SYMLINK_FOLLOW); unlinkat(dfd,name,0); close(fd);} printf("tmpfile+linkat+unlink+close %6.0f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){ sprintf(name,"b%d",i); int fd=openat(dfd,name,O_CREAT|O_EXCL|O_RDWR|O_CLOEXEC|O_NOFOLLOW,0600); unlinkat(dfd,name,0); close(fd);} printf("O_EXCL create+unlink+close   %6.0f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){ sprintf(name,"c%d",i); openat(dfd,name,O_RDWR|O_CLOEXEC|O_NOFOLLOW); } printf("openat ENOENT                %6.0f ns\n",(now()-t)/N);
  int fd=openat(dfd,"x",O_CREAT|O_RDWR,0600);
  t=now(); for(int i=0;i<N;i++){ fchmod(fd,0600);} printf("fchmod                       %6.0f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){ ftruncate(fd,4096);} printf("ftruncate (same size)        %6.0f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){ fstatat(dfd,"x",&st,AT_SYMLINK_NOFOLLOW);} printf("fstatat                      %6.0f ns\n",(now()-t)/N);
  close(fd);
  }
}
