/* A 1024-token prefill (one layer, 8 KV heads x d 128, random data), CPU backend, one thread: PATTERN and
 * DIRECT with MINMAX and MSE_V (bench/RESULTS.md 2026-12-04 "MSE_V the default"). Not built by the project:
 *   gcc -O2 -I include prefill_harness.c build/libpatternkv.a -lm -lpthread -ldl -o prefill && ./prefill 7 */
/* 1024-token prefill, 8 KV heads x d 128, one layer, CPU backend, 1 thread: PATTERN/DIRECT x quantizer */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include "patternkv.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
int main(int argc,char**argv){
  int reps=argc>1?atoi(argv[1]):5; int T=argc>2?atoi(argv[2]):1024;
  const int H=8,d=128;
  pkv_context_params cp=pkv_context_params_default(); cp.backend=PKV_BACKEND_CPU; cp.n_threads=1;
  pkv_context*ctx; if(pkv_context_create(&cp,&ctx)){printf("ctx fail\n");return 1;}
  size_t n=(size_t)T*H*d; float*k=malloc(n*4),*v=malloc(n*4);
  unsigned s=1; for(size_t i=0;i<n;i++){s=s*1664525u+1013904223u;k[i]=((s>>8)/16777216.0f-0.5f)*2; s=s*1664525u+1013904223u; v[i]=((s>>8)/16777216.0f-0.5f)*2+0.3f*(float)((i/d)%7);}
  const char*qn[]={"minmax","mse","mse-k","mse-v"};
  for(int mode=0;mode<2;mode++) for(int q=0;q<4;q+=3){
    double best=1e9;
    for(int r=0;r<reps;r++){
      pkv_cache_config c=pkv_cache_config_default(); c.n_layers=1;c.n_kv_heads=H;c.head_dim=d;c.mode=mode?PKV_MODE_DIRECT:PKV_MODE_PATTERN;c.quantizer=q;c.k_bits=2;c.v_bits=2;
      pkv_cache*ca; if(pkv_cache_create(ctx,&c,&ca)){printf("cache fail\n");return 1;}
      pkv_seq sq; pkv_seq_create(ca,&sq);
      double t0=now(); if(pkv_append(ca,sq,0,T,k,v,PKV_F32)){printf("append fail\n");return 1;} double t=now()-t0;
      if(t<best)best=t; pkv_cache_free(ca);
    }
    printf("%s %s: %.1f ms (best of %d)\n",mode?"DIRECT":"PATTERN",qn[q],best*1e3,reps);
  }
  return 0;}
