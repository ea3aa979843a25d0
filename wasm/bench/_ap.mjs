import { MemoryHost } from "writesync-wasm";
const mk=(i)=>{const s=String(i).padStart(8,"0"); return [
{op:"put",key:`du/0001790000000000/t/-P23J5k-R19KB${s}`,value:"x".repeat(24)},
{op:"put",key:`du/0001790000000000/t/-P23J5k-R1DBj${s}`,value:"x".repeat(24)},
{op:"put",key:`obj/01a0c450-6c00-7001-8f8a-30ea42df8933/invoice/01a0c450-6c00-7020-8a9c-e4be${s}`,value:"x".repeat(1401)},
{op:"put",key:`rf/customer/-P23J5k-R-ePaVBknxNAKk/invoice/-P23J5k-R119b${s}`,value:"x".repeat(13)},
{op:"put",key:`sa/-P23J5k-R-5EXY2eFhy8Bk/z_wvftEzYxtTGyo${s}`,value:"x".repeat(24)},
{op:"put",key:`sy/-P23J5k-R119bDHym-${s}/c`,value:"x".repeat(26)},
{op:"put",key:`sy/-P23J5k-R15Wi0ALAB${s}`,value:"x".repeat(521)},
{op:"put",key:`uq/-P23J5k-R-5EXY2eFhy8Bk/invoice-number/INV-${s}`,value:"x".repeat(24)}];};
for (let r=0;r<3;r++){
const h=new MemoryHost(); const bs=Array.from({length:5500},(_, i)=>mk(i+r*100000));
const t=process.hrtime.bigint(); for(const b of bs) h.apply(b); const dt=Number(process.hrtime.bigint()-t)/5500;
console.log("ns per apply", Math.round(dt));}
