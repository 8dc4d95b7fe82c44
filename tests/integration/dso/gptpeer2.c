/* gptpeer2.c - libgptpeer2.so: like libgptpeer1.so, a second library so
 * that the hook's dlopen stub is exercised on its other path. */
int gpt_peer2(void);
int gpt_peer2(void)
{
	return 2;
}
