/* CPUID as the CPU answers a program: the leaves /proc/cpuinfo is made from. */
#include <stdio.h>
#include <cpuid.h>
int main(void){
  unsigned a,b,c,d; unsigned leaves[]={0,1,7,0xd,0x80000000,0x80000001,0x80000007,0x80000008};
  for(int i=0;i<8;i++){ __cpuid_count(leaves[i],0,a,b,c,d); printf("%08x: %08x %08x %08x %08x\n",leaves[i],a,b,c,d);}
  __cpuid_count(0xd,1,a,b,c,d); printf("d.1: %08x %08x %08x %08x\n",a,b,c,d);
  char brand[49]={0}; for(int i=0;i<3;i++){__cpuid(0x80000002+i,a,b,c,d); unsigned*p=(unsigned*)(brand+16*i); p[0]=a;p[1]=b;p[2]=c;p[3]=d;}
  printf("brand: %s\n",brand);
}
