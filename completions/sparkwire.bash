# bash completion for the sparkwire commands: cloudmon, sparkkeys, sparkdev, sparkcloud.
# Installed once and linked under each command's name, so bash-completion's lazy loader finds it.
# Options are read from the command's own --help, so they follow the installed version.

# The long and short options a command's --help lists (extra words: a subcommand).
_sparkwire_options()
{
    local cmd=$1
    shift
    LC_ALL=C "$cmd" "$@" --help 2>&1 | grep -oE -- '(^|[[:space:],])--?[A-Za-z][A-Za-z0-9-]*' |
        sed -e 's/^[[:space:],]*//' | sort -u
}

# Sets COMPREPLY to the words of $1 that start with the current word.
_sparkwire_words()
{
    COMPREPLY=($(compgen -W "$1" -- "$cur"))
}

_sparkwire_files()
{
    local IFS=$'\n'
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
}

_sparkwire_dirs()
{
    local IFS=$'\n'
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -d -- "$cur"))
}

_sparkwire_cloudmon()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()
    case $prev in
        -r|--read|-k|--keyfile|-w|--write|--export-decrypted) _sparkwire_files; return ;;
        -i|--interface)
            _sparkwire_words "$(ls /sys/class/net 2>/dev/null) any"
            return ;;
        -Z|--user) _sparkwire_words "$(compgen -u)"; return ;;
        -f|--filter|-p|--port|--cloud-port|-c|--count|-s|--snaplen|--duration|--idle|--max-conns|--history)
            return ;;
    esac
    if [[ $cur == -* ]]; then
        _sparkwire_words "$(_sparkwire_options "${COMP_WORDS[0]}")"
    fi
}

_sparkwire_sparkkeys()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="show match check import new"
    COMPREPLY=()
    if ((COMP_CWORD == 1)); then
        _sparkwire_words "$commands --help --version"
        return
    fi
    local sub=${COMP_WORDS[1]}
    case $prev in
        -o|--out) _sparkwire_dirs; return ;;
        -r|--role) _sparkwire_words "device device-public server server-public"; return ;;
        -l|--layout) _sparkwire_words "core dct"; return ;;
        -d|--device) return ;;
    esac
    if [[ $cur == -* ]]; then
        _sparkwire_words "$(_sparkwire_options "${COMP_WORDS[0]}" "$sub")"
    else
        _sparkwire_files
    fi
}

_sparkwire_sparkdev()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()
    case $prev in
        --key|--server-key|--keyfile|--ota-out) _sparkwire_files; return ;;
        --generation) _sparkwire_words "g1 g2"; return ;;
        --stop-after) _sparkwire_words "nonce id-block session-block hello"; return ;;
        --on-fail) _sparkwire_words "close hold"; return ;;
        --id|--platform|--function|--variable|--event|--subscribe|--run-time|--io-timeout|--hello-timeout|\
        --ping-idle|--ping-timeout|--corrupt-frame|--ota-stall-after)
            return ;;
    esac
    if [[ $cur == -* ]]; then
        _sparkwire_words "$(_sparkwire_options "${COMP_WORDS[0]}")"
    fi
}

_sparkwire_sparkcloud()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()
    case $prev in
        --server-key|--keyfile|--ota|--session-log|--wrong-key|--sign-key) _sparkwire_files; return ;;
        --keys-dir) _sparkwire_dirs; return ;;
        --device-key|--call|--read|--send-event|--ota-bad-crc|--session-time|--script-delay|--id-timeout|\
        --hello-timeout|--handshake-timeout|--reply-timeout|--ota-timeout|--connections|--time-limit)
            return ;;
    esac
    if [[ $cur == -* ]]; then
        _sparkwire_words "$(_sparkwire_options "${COMP_WORDS[0]}")"
    fi
}

complete -F _sparkwire_cloudmon cloudmon
complete -F _sparkwire_sparkkeys sparkkeys
complete -F _sparkwire_sparkdev sparkdev
complete -F _sparkwire_sparkcloud sparkcloud
