import json,glob,sys,statistics as st
def load(tag):
    out={}
    for f in glob.glob(f'bench/results/2026-12-05_eqmem_s15/{tag}_*.json'):
        off=int(f.rsplit('_',1)[1][:-5]); d=json.load(open(f))
        base=[it['bits_per_byte'] for it in d['results'] if it['mode']=='fp16'][0]
        for it in d['results']:
            out.setdefault(it['curve']+f" {it['k_bits']}",{})[off]=(100*(it['bits_per_byte']/base-1), it['cache_bits_per_element'])
    return out
a=load(sys.argv[1]); b=load(sys.argv[3]) if len(sys.argv)>4 else a
x=a[sys.argv[2]]; y=b[sys.argv[4] if len(sys.argv)>4 else sys.argv[3]]
ks=sorted(set(x)&set(y)); d=[x[k][0]-y[k][0] for k in ks]
print(f"{len(ks)} windows: mean diff {st.mean(d):+.3f} (sd {st.stdev(d):.3f}, se {st.stdev(d)/len(d)**.5:.3f}); first better on {sum(1 for v in d if v<0)}")
