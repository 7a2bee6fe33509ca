# Shares of the client's instructions by kind, from callgrind's exclusive counts (benchmarks/callgrind).
# Inclusive counts are no use for this: async functions recurse through swift_task_switch.
import re, sys, subprocess
out = sys.argv[1]
text = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", out], capture_output=True, text=True).stdout
dem = subprocess.run(["/opt/swift/usr/bin/swift-demangle", "--simplified"], input=text, capture_output=True, text=True).stdout
rows = []
for line in dem.splitlines():
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
    if m and "PROGRAM TOTALS" not in line:
        rows.append((int(m.group(1).replace(",", "")), m.group(2)))
total = sum(r[0] for r in rows)
cats = [
    ("Swift runtime: retain/release, allocation", r"swift_retain|swift_release|swift_bridgeObject|RefCounts|swift_allocObject|swift_deallocClassInstance|swift_arrayInitWithCopy|swift_arrayDestroy|swift_slowAlloc|swift_slowDealloc|swift_beginAccess|swift_isUniquelyReferenced|swift_endAccess|swift_dynamicCast"),
    ("libc malloc/free/memcpy", r"malloc|_int_free|free|memmove|memcpy|memset|cfree|unlink_chunk"),
    ("hashing and dictionaries", r"Hasher|hash\(into|_RawDictionaryStorage|Dictionary|_NativeDictionary|_HashTable|hashValue|Set<|_NativeSet"),
    ("strings (building, UTF-8, comparing)", r"String|_StringGuts|_StringObject|Substring|Character|Unicode|UTF8"),
    ("arrays and sequences", r"Array|Sequence|ContiguousArray|_copyContents|Collection"),
    ("JSON decoding", r"JSON"),
    ("expressions and operations", r"Expression|ProjectionValue|ValueArithmetic|ValueComparison|Operation"),
    ("rows and workspace", r"RowWorkspace|RowKey|ColumnValues|Row"),
    ("MySQL wrapper and client library", r"MySQL|libmariadb|mysql_|ma_|escape"),
    ("PostgreSQL wrapper and libpq", r"Postgres|libpq|PQ|pq"),
    ("Swift concurrency runtime", r"swift_task|swift_job|_Concurrency|Task|Executor|dispatch"),
    ("kernel entry, dynamic linker", r"ld-linux|syscall|_dl_"),
]
sums = {c[0]: 0 for c in cats}; sums["other"] = 0
for ir, name in rows:
    for label, pattern in cats:
        if re.search(pattern, name):
            sums[label] += ir; break
    else:
        sums["other"] += ir
for label, ir in sorted(sums.items(), key=lambda x: -x[1]):
    print(f"  {label:44} {ir/total*100:5.1f}%")
