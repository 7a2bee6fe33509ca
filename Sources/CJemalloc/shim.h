// jemalloc, linked into the `reprise` executables so that it serves their malloc (it comes
// before libc in the executable's libraries). Nothing is called through this module: the
// engine finds jemalloc's control interface at run time (CMalloc), so a process without it
// (the tests, a team's own executable that does not link it) keeps glibc's malloc.
// <jemalloc/jemalloc.h> redeclares malloc and free, so it is not included here: this header
// declares nothing.
