/* gptpeer1.c - libgptpeer1.so: found by bare name only through
 * libgptcuda.so's RUNPATH ($ORIGIN). */
int gpt_peer1(void);
int gpt_peer1(void)
{
	return 1;
}
