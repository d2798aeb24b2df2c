/* The A/B tool of bench/RESULTS.md (2026-12-05, session 12, issue 15 decode): pkv_attention on one
 * 4096-token sequence (PREFILL tokens first, then 128 at a time; ROT sequences rotated), 8 KV heads x
 * d 128, 32 query heads; min / p25 / median of ITERS calls after 20 warm-up. Build against a build's
 * static library: gcc -O2 -Iinclude decode_calls.c build/libpatternkv.a -lm -lpthread -ldl; run
 * PREFILL=256 ./a.out pattern|direct BITS THREADS. */
#include <patternkv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
static int cmp(const void*a,const void*b){double x=*(const double*)a,y=*(const double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int mode = argc>1 && !strcmp(argv[1],"direct") ? PKV_MODE_DIRECT : argc>1 && !strcmp(argv[1],"fp16") ? PKV_MODE_FP16 : PKV_MODE_PATTERN;
  unsigned bits = argc>2 ? atoi(argv[2]) : 2, threads = argc>3 ? atoi(argv[3]) : 1, iters = getenv("ITERS") ? atoi(getenv("ITERS")) : 300;
  pkv_context_params p = pkv_context_params_default(); p.backend = PKV_BACKEND_CPU; p.n_threads = threads;
  pkv_context *ctx; if (pkv_context_create(&p,&ctx)) return 1;
  pkv_cache_config c = pkv_cache_config_default(); c.n_layers=1; c.n_kv_heads=8; c.head_dim=128; c.k_bits=c.v_bits=bits; c.group_size=128; c.mode=mode; c.memory_budget=1024ull<<20;
  pkv_cache *cache; if (pkv_cache_create(ctx,&c,&cache)) {fprintf(stderr,"cache %s\n",pkv_last_error());return 1;}
  unsigned ROT = getenv("ROT") ? atoi(getenv("ROT")) : 1; pkv_seq ss[64];
  unsigned T=getenv("T")?atoi(getenv("T")):4096, H=8, d=128; size_t n=(size_t)T*H*d; float *k=malloc(n*4),*v=malloc(n*4);
  srand(1); for(size_t i=0;i<n;i++){k[i]=(rand()/(float)RAND_MAX-0.5f)*2+((i%d)%7)*0.3f; v[i]=(rand()/(float)RAND_MAX-0.5f)*2;}
  unsigned P = getenv("PREFILL") ? atoi(getenv("PREFILL")) : T, WIN = getenv("WIN") ? atoi(getenv("WIN")) : 0;
  for (unsigned ri = 0; ri < ROT; ri++) { pkv_seq s; pkv_seq_create(cache,&s); ss[ri] = s;
  if (pkv_append(cache,s,0,P,k,v,PKV_F32)) {fprintf(stderr,"append %s\n",pkv_last_error());return 1;}
  for (unsigned t = P; t < T + WIN; t += 128) { unsigned m = T + WIN - t < 128 ? T + WIN - t : 128; size_t o = (size_t)(t % T)*H*d;
    if (pkv_append(cache,s,0,m,k+o,v+o,PKV_F32)) {fprintf(stderr,"append2 %s\n",pkv_last_error());return 1;} }
  }
  pkv_cache_stats st = {.struct_size = sizeof st}; pkv_cache_stats_get(cache, &st);
  if (getenv("STATS")) fprintf(stderr, "patterns bytes %llu window %llu blocks %llu\n", (unsigned long long)st.bytes_patterns,(unsigned long long)st.bytes_window,(unsigned long long)st.blocks_used);
  unsigned nq=32; float *q=malloc(nq*d*4),*out=malloc(nq*d*4); for(unsigned i=0;i<nq*d;i++) q[i]=(rand()/(float)RAND_MAX-0.5f)*2;
  pkv_attention_params ap={.struct_size=sizeof ap,.seqs=&ss[0],.n_seqs=1,.layer=0,.q_len=1,.n_q_heads=nq,.scale=0.0f,.q_dtype=PKV_F32};
  double *ts=malloc(iters*sizeof(double));
  for(unsigned i=0;i<20;i++) { ap.seqs=&ss[i%ROT]; pkv_attention(cache,&ap,q,out); }
  for(unsigned i=0;i<iters;i++){ap.seqs=&ss[i%ROT]; double t0=now(); pkv_attention(cache,&ap,q,out); ts[i]=now()-t0;}
  qsort(ts,iters,sizeof *ts,cmp); if (getenv("SUM")) { double sm = 0; for (unsigned i = 0; i < nq*d; i++) sm += out[i] * (1 + i % 7); fprintf(stderr, "sum %.9g\n", sm); }
  printf("%s %u-bit thr%u: min %.4f p25 %.4f med %.4f ms\n", mode==PKV_MODE_PATTERN?"pattern":mode==PKV_MODE_DIRECT?"direct":"fp16", bits, threads, ts[0], ts[iters/4], ts[iters/2]);
  return 0;
}
