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

# Completes the value of the option before the cursor; returns 1 when that word takes no value.
# $1: options that take a file, $2: a folder, $3: a value typed freely; then "OPTION=WORD WORD..."
# for options that take one of a few words.
_sparkwire_value()
{
    local files=" ${1//[[:space:]]/ } " dirs=" ${2//[[:space:]]/ } " free=" ${3//[[:space:]]/ } " choice
    shift 3
    if [[ $files == *" $prev "* ]]; then
        _sparkwire_files
    elif [[ $dirs == *" $prev "* ]]; then
        _sparkwire_dirs
    elif [[ $free != *" $prev "* ]]; then
        for choice; do
            if [[ $prev == "${choice%%=*}" ]]; then
                _sparkwire_words "${choice#*=}"
                return 0
            fi
        done
        return 1
    fi
    return 0
}

_sparkwire_cloudmon()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()
    _sparkwire_value "-r --read -k --keyfile -w --write --export-decrypted --export-sessions --report" "" \
        "-f --filter --cloud-port -c --count -s --snapshot-length --duration --idle --max-conns --history --metrics --linger --queue-mb --rsa-budget" \
        "-i=$(ls /sys/class/net 2>/dev/null) any" "--interface=$(ls /sys/class/net 2>/dev/null) any" \
        "-Z=$(compgen -u)" "--user=$(compgen -u)" && return
    [[ $cur == -* ]] && _sparkwire_words "$(_sparkwire_options "${COMP_WORDS[0]}")"
}

_sparkwire_sparkkeys()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()
    if ((COMP_CWORD == 1)); then
        _sparkwire_words "show match check import new --help --version"
        return
    fi
    local roles="device device-public server server-public"
    _sparkwire_value "" "-o --out" "-d --device" "-r=$roles" "--role=$roles" "-l=core dct" "--layout=core dct" &&
        return
    if [[ $cur == -* ]]; then
        _sparkwire_words "$(_sparkwire_options "${COMP_WORDS[0]}" "${COMP_WORDS[1]}")"
    elif [[ ${COMP_WORDS[1]} == check ]] && ((COMP_CWORD == 3)); then
        # check KEYFILE CAPTURE: captures and folders
        local IFS=$'\n'
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -d -- "$cur") $(compgen -f -X '!*.pcap' -- "$cur") $(compgen -f -X '!*.pcapng' -- "$cur")
                   $(compgen -f -X '!*.cap' -- "$cur"))
    else
        _sparkwire_files
    fi
}

_sparkwire_sparkdev()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()
    _sparkwire_value "--key --server-key --keyfile --ota-out" "" \
        "--id --platform --function --variable --event --subscribe --run-time --io-timeout --hello-timeout
         --ping-idle --ping-timeout --corrupt-frame --ota-stall-after" \
        "--generation=g1 g2 g3" "--stop-after=nonce id-block session-block hello" "--on-fail=close hold" \
        "--describe-twice=0.4 0.6" && return
    [[ $cur == -* ]] && _sparkwire_words "$(_sparkwire_options "${COMP_WORDS[0]}")"
}

_sparkwire_sparkcloud()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()
    _sparkwire_value "--server-key --keyfile --ota --session-log --wrong-key --sign-key" "--keys-dir" \
        "--device-key --call --read --send-event --ota-bad-crc --session-time --script-delay --id-timeout
         --hello-timeout --handshake-timeout --reply-timeout --ota-timeout --ota-skip-chunk --refuse-events
         --connections --time-limit" && return
    [[ $cur == -* ]] && _sparkwire_words "$(_sparkwire_options "${COMP_WORDS[0]}")"
}

complete -F _sparkwire_cloudmon cloudmon
complete -F _sparkwire_sparkkeys sparkkeys
complete -F _sparkwire_sparkdev sparkdev
complete -F _sparkwire_sparkcloud sparkcloud
