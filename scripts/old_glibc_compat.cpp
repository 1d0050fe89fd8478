// What the portable binary's C++ (tch's and our shims, compiled with gcc 12's headers)
// asks of newer runtimes than glibc 2.28 and gcc 8's libstdc++ (RHEL 8) provide, defined
// here so that scripts/build_portable.sh can link against glibc 2.28. Linked into that
// binary only: a normal build uses this machine's runtimes.
#include <new>
#include <sstream>

// glibc 2.32: set while the process has one thread, so that shared_ptr's inline code can
// skip its atomics. Never set here: the atomic path, correct with any number of threads.
extern "C" {
char __libc_single_threaded = 0;
}

// GLIBCXX_3.4.29 (gcc 11): thrown by allocators for sizes over the maximum.
namespace std {
void __throw_bad_array_new_length() { throw bad_array_new_length(); }
}  // namespace std

// GLIBCXX_3.4.26 (gcc 9): ostringstream's default constructor, instantiated here from the
// header's inline definition (older libraries only have the one taking an openmode).
template std::basic_ostringstream<char>::basic_ostringstream();
