/*
 * The command input of pelix-mqtt: standard input read with poll() beside the stop descriptor,
 * so a signal ends the wait; on a terminal through libedit's readline interface (line editing,
 * history, completion of command names), otherwise as plain lines.
 */
#include <editline/readline.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"

/* ---- terminal (libedit) ---------------------------------------------------------------------- */

static pelix_shell_t *tty_shell;
static bool tty_quit, tty_eof;

/* The command runs with the terminal given back (cooked, no prompt), then the prompt comes back
 * under its output. */
static void on_line(char *line)
{
    rl_callback_handler_remove();
    if (!line) {
        tty_eof = true;
        return;
    }
    if (*line) {
        add_history(line);
    }
    if (pelix__shell_exec(tty_shell, line) == PELIX_SHELL_QUIT) {
        tty_quit = true;
    }
    free(line);
    if (!tty_quit) {
        rl_callback_handler_install("pelix> ", on_line);
    }
}

/* Completion of the first word: the command names starting with `text`. */
static char *complete_command(const char *text, int state)
{
    static size_t next;
    size_t count, len = strlen(text);
    const char *const *names = pelix__shell_commands(&count);

    if (state == 0) {
        next = 0;
    }
    while (next < count) {
        const char *name = names[next++];
        if (strncmp(name, text, len) == 0) {
            return strdup(name);
        }
    }
    return NULL;
}

static app_stop_t run_tty(int stop_fd)
{
    struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};

    rl_completion_entry_function = complete_command;
    rl_callback_handler_install("pelix> ", on_line);
    while (!tty_quit && !tty_eof) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (fds[1].revents) {
            rl_callback_handler_remove();
            fputc('\n', stdout);
            return APP_STOP_SIGNAL;
        }
        if (fds[0].revents) {
            rl_callback_read_char();
        }
    }
    return tty_quit ? APP_STOP_QUIT : APP_STOP_EOF;
}

/* ---- plain lines ----------------------------------------------------------------------------- */

static app_stop_t run_lines(pelix_shell_t *sh, int stop_fd, bool exit_on_eof)
{
    struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bool eof = false;

    for (;;) {
        if (poll(eof ? fds + 1 : fds, eof ? 1 : 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (fds[1].revents) {
            free(buf);
            return APP_STOP_SIGNAL;
        }
        if (eof || !fds[0].revents) {
            continue;
        }
        if (len + 4096 + 1 > cap) {
            char *more = realloc(buf, cap = len + 4096 + 1 + cap);
            if (!more) {
                free(buf);
                return APP_STOP_EOF;
            }
            buf = more;
        }
        ssize_t n = read(0, buf + len, 4096);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            eof = true;
            if (len > 0) { /* a last line without its newline */
                buf[len] = '\0';
                len = 0;
                if (pelix__shell_exec(sh, buf) == PELIX_SHELL_QUIT) {
                    break;
                }
            }
            if (exit_on_eof) {
                free(buf);
                return APP_STOP_EOF;
            }
            continue;
        }
        len += (size_t)n;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', len - (size_t)(start - buf))) != NULL) {
            *nl = '\0';
            if (pelix__shell_exec(sh, start) == PELIX_SHELL_QUIT) {
                free(buf);
                return APP_STOP_QUIT;
            }
            start = nl + 1;
        }
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
    }
    free(buf);
    return APP_STOP_QUIT;
}

app_stop_t app_input_run(pelix_shell_t *sh, int stop_fd, bool exit_on_eof)
{
    if (isatty(0)) {
        tty_shell = sh;
        return run_tty(stop_fd);
    }
    return run_lines(sh, stop_fd, exit_on_eof);
}
