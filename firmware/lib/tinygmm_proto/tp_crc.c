/* tp_crc.c -- CRC-16/CCITT-FALSE, the check of every line in both directions (docs/protocol.md). */
#include "tinygmm_proto.h"

uint16_t tinygmm_proto_crc16(uint16_t crc, uint8_t byte)
{
    int i;
    crc = (uint16_t)(crc ^ (uint16_t)((uint16_t)byte << 8));
    for (i = 0; i < 8; ++i) {
        crc = (crc & 0x8000u) ? (uint16_t)((uint16_t)(crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}
