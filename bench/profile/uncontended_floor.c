/* Lower bound of an uncontended lock+unlock on this machine: a bare CAS + XCHG pair, against
 * the robust recursive process-shared pthread mutex, a plain one and a semaphore.
 * gcc -O2 -o /tmp/floor uncontended_floor.c -lpthread && /tmp/floor   (see ../README.md) */
#define _GNU_SOURCE
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <semaphore.h>
#include <time.h>
#include <stdint.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
#define N 20000000
_Atomic uint64_t w; uint32_t cnt;
int main(){
  pthread_mutexattr_t a; pthread_mutexattr_init(&a); pthread_mutexattr_setpshared(&a,1); pthread_mutexattr_setrobust(&a,1); pthread_mutexattr_settype(&a,PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_t m; pthread_mutex_init(&m,&a); pthread_mutex_t plain=PTHREAD_MUTEX_INITIALIZER; sem_t s; sem_init(&s,1,1);
  for(int r=0;r<3;r++){
  double t=now(); for(int i=0;i<N;i++){uint64_t e=0; atomic_compare_exchange_strong(&w,&e,5); cnt=1; cnt=0; atomic_exchange(&w,0);} printf("bare CAS+XCHG     %.1f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){uint64_t e=0; atomic_compare_exchange_strong(&w,&e,5); cnt=1; cnt=0; atomic_store_explicit(&w,0,memory_order_release);} printf("bare CAS+store    %.1f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){pthread_mutex_lock(&m);pthread_mutex_unlock(&m);} printf("pthread robust    %.1f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){pthread_mutex_lock(&m);pthread_mutex_lock(&m);pthread_mutex_unlock(&m);pthread_mutex_unlock(&m);} printf("pthread robust d2 %.1f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){pthread_mutex_lock(&plain);pthread_mutex_unlock(&plain);} printf("pthread plain     %.1f ns\n",(now()-t)/N);
  t=now(); for(int i=0;i<N;i++){sem_wait(&s);sem_post(&s);} printf("sem               %.1f ns\n",(now()-t)/N);
  }
}
