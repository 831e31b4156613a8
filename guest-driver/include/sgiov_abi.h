/* SPDX-License-Identifier: MIT */
/*
 * SG-IOV guest/device ABI. GENERATED from emulator/abi/abi.ts by
 * `npm run gen-header`; do not edit by hand (a test checks it is current).
 */
#ifndef SGIOV_ABI_H
#define SGIOV_ABI_H

#define SGIOV_ABI_MAJOR                      1
#define SGIOV_ABI_MINOR                      0

/* PCI identity (defaults) */
#define SGIOV_PCI_VENDOR_ID                  0x1234
#define SGIOV_PCI_DEVICE_ID                  0x5347
#define SGIOV_PCI_SUBSYS_VENDOR_ID           0x1234
#define SGIOV_PCI_SUBSYS_ID                  0x0001
#define SGIOV_PCI_CLASS_BASE                 0x0002
#define SGIOV_PCI_CLASS_SUB                  0x0080
#define SGIOV_PCI_CLASS_PROG_IF              0x0000
#define SGIOV_PCI_REVISION                   0x0001

/* BAR layout */
#define SGIOV_REGS_BAR                       0
#define SGIOV_REGS_BAR_SIZE                  0x10000
#define SGIOV_MSIX_BAR                       4
#define SGIOV_MSIX_BAR_SIZE                  0x1000
#define SGIOV_MSIX_TABLE_OFFSET              0x0
#define SGIOV_MSIX_PBA_OFFSET                0x800
#define SGIOV_MSIX_VECTORS                   16

/* Constants */
#define SGIOV_ID_MAGIC                       0x53474956
#define SGIOV_DMA_MAX_LEN                    0x100000

/* BAR0 registers: offset, width in bytes */
#define SGIOV_REG_ID                         0x000           /* ro, 32-bit: Magic SGIOV_ID_MAGIC */
#define SGIOV_REG_VERSION                    0x004           /* ro, 32-bit: ABI version: major << 16 | minor */
#define SGIOV_REG_CAPS                       0x008           /* ro, 32-bit: Capability bits SGIOV_CAP_* */
#define SGIOV_REG_STATUS                     0x00c           /* ro, 32-bit: Device status bits SGIOV_STATUS_* */
#define SGIOV_REG_CONTROL                    0x010           /* rw, 32-bit: SGIOV_CONTROL_ENABLE; writing SGIOV_CONTROL_RESET resets the device (self-clearing) */
#define SGIOV_REG_ERROR_CODE                 0x014           /* w1c, 32-bit: Latched first error SGIOV_ERR_*; any write clears it and STATUS.ERROR */
#define SGIOV_REG_ERROR_ADDR                 0x018           /* ro, 64-bit: Guest address (or register offset) the latched error concerns */
#define SGIOV_REG_IRQ_STATUS                 0x020           /* w1c, 32-bit: Pending interrupt causes SGIOV_IRQ_*; write 1 to clear */
#define SGIOV_REG_IRQ_MASK                   0x024           /* rw, 32-bit: Enabled interrupt causes SGIOV_IRQ_* */
#define SGIOV_REG_ERR_VECTOR                 0x028           /* rw, 32-bit: MSI-X vector raised for SGIOV_IRQ_ERROR */
#define SGIOV_REG_NUM_VECTORS                0x02c           /* ro, 32-bit: Number of MSI-X vectors */
#define SGIOV_REG_SCRATCH                    0x030           /* rw, 32-bit: Free for the driver: reads back what was written */
#define SGIOV_REG_IRQ_COUNT                  0x034           /* ro, 32-bit: MSI-X messages sent since reset */
#define SGIOV_REG_BAD_ACCESS_COUNT           0x038           /* ro, 32-bit: Accesses to undefined offsets or with unsupported sizes since reset */
#define SGIOV_REG_DMA_COMPLETED              0x03c           /* ro, 32-bit: DMA jobs completed since reset */
#define SGIOV_REG_DMA_SRC                    0x100           /* rw, 64-bit: DMA job: guest address to read */
#define SGIOV_REG_DMA_DST                    0x108           /* rw, 64-bit: DMA job: guest address to write */
#define SGIOV_REG_DMA_LEN                    0x110           /* rw, 32-bit: DMA job: length in bytes, 1..SGIOV_DMA_MAX_LEN */
#define SGIOV_REG_DMA_OP                     0x114           /* rw, 32-bit: DMA job: transformation SGIOV_DMA_OP_* */
#define SGIOV_REG_DMA_VECTOR                 0x118           /* rw, 32-bit: DMA job: MSI-X vector raised on completion */
#define SGIOV_REG_DMA_STATUS                 0x11c           /* ro, 32-bit: DMA engine state SGIOV_DMA_STATE_* of the last job */
#define SGIOV_REG_DMA_TAG                    0x120           /* ro, 32-bit: Tag written to the doorbell for the last finished job */

/* Doorbells (trapped), BAR0 */
#define SGIOV_DOORBELL_BASE                  0x1000
#define SGIOV_DOORBELL_SIZE                  0x1000
#define SGIOV_DOORBELL_DMA                   0x1000

/* Bit fields */
#define SGIOV_CAP_DMA_ENGINE                 (1u << 0)
#define SGIOV_CAP_MSIX                       (1u << 1)
#define SGIOV_STATUS_READY                   (1u << 0)
#define SGIOV_STATUS_ENABLED                 (1u << 1)
#define SGIOV_STATUS_ERROR                   (1u << 2)
#define SGIOV_STATUS_BUS_MASTER              (1u << 3)
#define SGIOV_CONTROL_ENABLE                 (1u << 0)
#define SGIOV_CONTROL_RESET                  (1u << 31)
#define SGIOV_IRQ_DMA_DONE                   (1u << 0)
#define SGIOV_IRQ_ERROR                      (1u << 1)

/* Enumerations */
#define SGIOV_DMA_OP_COPY                    0
#define SGIOV_DMA_OP_INVERT                  1
#define SGIOV_DMA_STATE_IDLE                 0
#define SGIOV_DMA_STATE_DONE                 1
#define SGIOV_DMA_STATE_ERROR                2
#define SGIOV_ERR_NONE                       0
#define SGIOV_ERR_DMA_UNMAPPED               1
#define SGIOV_ERR_DMA_BUS_MASTER_OFF         2
#define SGIOV_ERR_DMA_BAD_LENGTH             3
#define SGIOV_ERR_BAD_OPCODE                 4
#define SGIOV_ERR_BAD_VECTOR                 5
#define SGIOV_ERR_BAD_DOORBELL               6
#define SGIOV_ERR_NOT_ENABLED                7

#endif /* SGIOV_ABI_H */
