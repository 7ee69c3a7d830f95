/* A raw libzmq DEALER/ROUTER round trip between two processes, the floor for the cluster's hop latency:
   cc -O2 scripts/zmq_pingpong.c -o /tmp/zmq_pingpong -lzmq && /tmp/zmq_pingpong [poll] */
#include <zmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  /* Fork before any context exists: a context's I/O thread does not survive fork. */
  int n=2000, sz=2304; char buf[8192]; memset(buf,1,sizeof buf);
  if(fork()==0){ void*s=zmq_socket(zmq_ctx_new(),ZMQ_ROUTER); zmq_bind(s,"tcp://127.0.0.1:5599");
    for(int i=0;i<n+10;i++){ zmq_msg_t id,m; zmq_msg_init(&id); zmq_msg_init(&m);
      if(argc>1){zmq_pollitem_t it={s,0,ZMQ_POLLIN,0}; zmq_poll(&it,1,1000);}
      zmq_msg_recv(&id,s,0); zmq_msg_recv(&m,s,0); zmq_msg_send(&id,s,ZMQ_SNDMORE); zmq_msg_send(&m,s,0);} return 0;}
  void*ctx=zmq_ctx_new(); void*d=zmq_socket(ctx,ZMQ_DEALER); zmq_connect(d,"tcp://127.0.0.1:5599"); double *t=malloc(n*sizeof(double));
  for(int i=0;i<n+10;i++){ double a=now(); zmq_send(d,buf,sz,0);
    if(argc>1){zmq_pollitem_t it={d,0,ZMQ_POLLIN,0}; zmq_poll(&it,1,1000);}
    zmq_recv(d,buf,sizeof buf,0); if(i>=10)t[i-10]=now()-a; }
  qsort(t,n,sizeof(double),cmp); printf("%d-byte round trip: median %.0f us, p99 %.0f us\n",sz,t[n/2],t[n*99/100]); wait(NULL); return 0;}
