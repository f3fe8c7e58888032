#!/bin/sh
# Rebuilds offline_voice.ogg, what the offline synthesiser sends for every spoken reply
# when no OPENAI_API_KEY is set: espeak-ng's voice, encoded by ffmpeg as mono 48 kHz
# OGG/Opus at 16 kb/s, the format WhatsApp plays as a voice note.
set -eu
cd "$(dirname "$0")"
espeak-ng -w /tmp/wabot-offline-voice.wav "Offline voice. Set an OpenAI key to hear the reply spoken."
ffmpeg -loglevel error -y -i /tmp/wabot-offline-voice.wav -ac 1 -ar 48000 -c:a libopus -b:a 16k \
    -application voip -map_metadata -1 -fflags +bitexact offline_voice.ogg
