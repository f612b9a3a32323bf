#pragma once
// The decode team (decode_kernels.c) for the other kernel files: runs body(context, begin, end) over
// units 0 ..< units, claimed in multiples of `quantum` (1, 2, 4 or 8), on every core when `parallel`
// (on the calling thread alone otherwise, or when the team is busy or off). Not public API.
typedef void (*hp_team_body)(void *context, long begin, long end);
void hp_team_run(hp_team_body body, void *context, long units, int quantum, int parallel);
// The calling thread's place in the running task: 0 for the caller (and any thread outside the
// team), 1 ..< hp_team_size() for the workers — an index into per-thread scratch a body needs.
int hp_team_index(void);
int hp_team_size(void);
