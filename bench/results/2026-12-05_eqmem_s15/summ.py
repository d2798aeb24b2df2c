import json,glob,sys,statistics as st
for tag in sys.argv[1:]:
    res={}; order=[]
    for f in sorted(glob.glob(f'bench/results/2026-12-05_eqmem_s15/{tag}_*.json')):
        d=json.load(open(f))
        base=None
        for it in d['results']:
            if it['mode']=='fp16': base=it['bits_per_byte']
        for it in d['results']:
            name=it['curve']+f" {it['k_bits']}/{it['v_bits']}"
            if name not in res: order.append(name)
            res.setdefault(name,[]).append((100*(it['bits_per_byte']/base-1), it['cache_bits_per_element']))
    print(tag)
    for n in order:
        v=[x[0] for x in res[n]]; b=[x[1] for x in res[n]]
        print(f"  {n:28s} n={len(v):2d} mean {st.mean(v):+.2f}%  median {st.median(v):+.2f}%  spread {max(v)-min(v):.2f}  b/el {st.mean(b):.3f}")
