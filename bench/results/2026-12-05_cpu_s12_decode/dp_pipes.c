/* What each instruction costs next to one vpdpwssd per cycle (bench/RESULTS.md, 2026-12-05, session 12):
 * 12 independent vpdpwssd chains per iteration, then 8 more instructions of one kind; the extra time per
 * added instruction is its share of vpdpwssd's pipes. gcc -O2 -march=znver3 -mavx512f -mavx512bw
 * -mavx512vnni -mavx512vbmi -mgfni dp_pipes.c */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
#define N 20000000
#define DP(a,b,c) __asm__ volatile("vpdpwssd %2, %1, %0" : "+v"(a) : "v"(b), "v"(c));
#define OP(a, expr) { a = expr; __asm__ volatile("" : "+v"(a)); }
#define BODY(name, ...) { __m512i a0=_mm512_set1_epi32(1),a1=a0,a2=a0,a3=a0,a4=a0,a5=a0,a6=a0,a7=a0,a8=a0,a9=a0,a10=a0,a11=a0, x=_mm512_set1_epi32(3), y=_mm512_set1_epi32(5), z=_mm512_set1_epi64(0x0102040810204080ll); \
  __m512i b0=_mm512_set1_epi32(7),b1=b0,b2=b0,b3=b0,b4=b0,b5=b0,b6=b0,b7=b0; \
  double t0=now(); for(long i=0;i<N;i++){ __VA_ARGS__ } double t=now()-t0; \
  __m512i s=_mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0,a1),_mm512_add_epi32(a2,a3)),_mm512_add_epi32(_mm512_add_epi32(a4,a5),_mm512_add_epi32(a6,a7))); \
  s=_mm512_add_epi32(s,_mm512_add_epi32(_mm512_add_epi32(a8,a9),_mm512_add_epi32(a10,a11))); s=_mm512_add_epi32(s,_mm512_add_epi32(_mm512_add_epi32(b0,b1),_mm512_add_epi32(b2,b3)));\
  s=_mm512_add_epi32(s,_mm512_add_epi32(_mm512_add_epi32(b4,b5),_mm512_add_epi32(b6,b7)));\
  printf("%-40s %.3f ns/iter (%d)\n", name, t/N, _mm512_reduce_add_epi32(s)); }
#define D12 DP(a0,x,y) DP(a1,x,y) DP(a2,x,y) DP(a3,x,y) DP(a4,x,y) DP(a5,x,y) DP(a6,x,y) DP(a7,x,y) DP(a8,x,y) DP(a9,x,y) DP(a10,x,y) DP(a11,x,y)
#define X8(F) OP(b0,F(b0)) OP(b1,F(b1)) OP(b2,F(b2)) OP(b3,F(b3)) OP(b4,F(b4)) OP(b5,F(b5)) OP(b6,F(b6)) OP(b7,F(b7))
#define SRLVW(v) _mm512_srlv_epi16(v,x)
#define SRLVD(v) _mm512_srlv_epi32(v,x)
#define ROLV(v) _mm512_rolv_epi32(v,x)
#define PSHUFB(v) _mm512_shuffle_epi8(v,x)
#define VPERMD(v) _mm512_permutexvar_epi32(x,v)
#define TERN(v) _mm512_ternarylogic_epi32(v,x,y,0xD8)
#define AND(v) _mm512_and_si512(v,x)
#define SRLI(v) _mm512_srli_epi32(v,2)
#define SRLW(v) _mm512_srli_epi16(v,2)
#define GF(v) _mm512_gf2p8affine_epi64_epi8(v,z,0)
#define MS(v) _mm512_multishift_epi64_epi8(x,v)
#define VPERMB(v) _mm512_permutexvar_epi8(x,v)
#define UNPK(v) _mm512_unpacklo_epi32(v,x)
#define SHUFD(v) _mm512_shuffle_epi32(v,0x1b)
#define BCQ(v) _mm512_broadcastq_epi64(_mm512_castsi512_si128(v))
#define CVT(v) _mm512_castps_si512(_mm512_cvtepi32_ps(v))
#define ADDD(v) _mm512_add_epi32(v,x)
int main(){
  long c0; { double t0=now(); long a=1; for(long i=0;i<N*4L;i++){ __asm__ volatile("add $1, %0" : "+r"(a)); } double t=now()-t0; printf("clock ~ %.2f GHz\n", N*4.0/t); }
  BODY("12 dp", D12)
  BODY("8 and", X8(AND))
  BODY("8 srli", X8(SRLI))
  BODY("8 srlvw", X8(SRLVW))
  BODY("8 pshufb", X8(PSHUFB))
  BODY("12 dp + 8 and", D12 X8(AND))
  BODY("12 dp + 8 srli", D12 X8(SRLI))
  BODY("12 dp + 8 srlw", D12 X8(SRLW))
  BODY("12 dp + 8 srlvw", D12 X8(SRLVW))
  BODY("12 dp + 8 srlvd", D12 X8(SRLVD))
  BODY("12 dp + 8 rolv", D12 X8(ROLV))
  BODY("12 dp + 8 pshufb", D12 X8(PSHUFB))
  BODY("12 dp + 8 vpermd", D12 X8(VPERMD))
  BODY("12 dp + 8 tern", D12 X8(TERN))
  BODY("12 dp + 8 gf", D12 X8(GF))
  BODY("12 dp + 8 multishift", D12 X8(MS))
  BODY("12 dp + 8 vpermb", D12 X8(VPERMB))
  BODY("12 dp + 8 unpck", D12 X8(UNPK))
  BODY("12 dp + 8 shufd", D12 X8(SHUFD))
  BODY("12 dp + 8 bcastq reg", D12 X8(BCQ))
  BODY("12 dp + 8 cvt", D12 X8(CVT))
  BODY("12 dp + 8 add", D12 X8(ADDD))
}
