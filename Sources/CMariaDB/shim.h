#ifndef REPRISE_CMARIADB_SHIM_H
#define REPRISE_CMARIADB_SHIM_H
// default-libmysqlclient-dev is MariaDB Connector/C on Debian; pkg-config `mysqlclient`
// puts its include folder on the path. Oracle's libmysqlclient ships the same header name.
#include <mysql.h>
#include <stdbool.h>
#include <stddef.h>

// MariaDB keeps `my_bool` (a char); MySQL 8 removed it in favour of `bool`.
#if defined(LIBMARIADB) || defined(MARIADB_BASE_VERSION)
typedef my_bool reprise_mysql_flag;
#else
typedef bool reprise_mysql_flag;
#endif

// `mysql_library_init` is a macro in both libraries: Swift cannot see it.
static inline int reprise_mysql_library_init(void) {
    return mysql_library_init(0, NULL, NULL);
}

// MYSQL_OPT_* options take pointers to values whose C type differs between the libraries.
static inline int reprise_mysql_set_uint_option(MYSQL *mysql, enum mysql_option option, unsigned int value) {
    return mysql_options(mysql, option, &value);
}
static inline int reprise_mysql_set_bool_option(MYSQL *mysql, enum mysql_option option, bool value) {
    reprise_mysql_flag flag = value ? 1 : 0;
    return mysql_options(mysql, option, &flag);
}
static inline int reprise_mysql_set_string_option(MYSQL *mysql, enum mysql_option option, const char *value) {
    return mysql_options(mysql, option, value);
}
#endif
