//! A small assembler for classic BPF, the language of seccomp programs:
//! instructions with forward jumps to labels, resolved into the 8-bit
//! offsets the kernel reads, and a search tree that dispatches on the system
//! call's number.
//!
//! The tree matters for cost, not only for speed at run time: when a program
//! is installed, the kernel runs it for every system call number to find the
//! calls it always allows (its action cache), with interrupts off. A linear
//! chain of comparisons makes that quadratic: the 282 instructions of the
//! spare's former program, one comparison per rule, took 230 µs to install
//! here; a tree over the same numbers visits a handful of nodes per number.

use crate::protocol::BpfInstruction;

/// `BPF_LD | BPF_W | BPF_ABS`: load a word of `seccomp_data`.
pub(crate) const LD_W_ABS: u16 = 0x20;
/// `BPF_ALU | BPF_AND | BPF_K`.
pub(crate) const AND_K: u16 = 0x54;
/// `BPF_JMP | BPF_JA`: jump always (by `k`).
pub(crate) const JA: u16 = 0x05;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
pub(crate) const JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGE | BPF_K`.
pub(crate) const JGE_K: u16 = 0x35;
/// `BPF_JMP | BPF_JSET | BPF_K`: jump if any of the bits is set.
pub(crate) const JSET_K: u16 = 0x45;
/// `BPF_RET | BPF_K`.
pub(crate) const RET_K: u16 = 0x06;

/// A place in the program, placed once; jumps to it must come before it
/// (classic BPF jumps only forward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label(usize);

/// Where a conditional jump goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum To {
    /// The next instruction.
    Next,
    /// A label.
    At(Label),
}

#[derive(Debug)]
struct Pending {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

/// A program being assembled.
#[derive(Debug, Default)]
pub(crate) struct Asm {
    code: Vec<Pending>,
    /// Each label's instruction index, once placed.
    labels: Vec<Option<usize>>,
}

impl Asm {
    /// A label to jump to, placed later with [`Asm::place`].
    pub(crate) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Places `label` at the next instruction.
    pub(crate) fn place(&mut self, label: Label) {
        debug_assert!(self.labels[label.0].is_none(), "label placed twice");
        self.labels[label.0] = Some(self.code.len());
    }

    /// An instruction that does not jump.
    pub(crate) fn op(&mut self, code: u16, k: u32) {
        self.jump(code, k, To::Next, To::Next);
    }

    /// A conditional jump: to `jt` when the condition holds, else to `jf`.
    pub(crate) fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.code.push(Pending { code, k, jt, jf });
    }

    /// An unconditional jump.
    pub(crate) fn goto(&mut self, to: Label) {
        self.jump(JA, 0, To::At(to), To::Next);
    }

    /// Returns `action`.
    pub(crate) fn ret(&mut self, action: u32) {
        self.op(RET_K, action);
    }

    /// Instructions that leave the accumulator (the call's number) as it is
    /// and jump to the label of `keys` the accumulator equals, or to `miss`:
    /// a search tree over the numbers, then a comparison with each of the
    /// last two or three. `keys` must be sorted, without repetitions.
    pub(crate) fn dispatch(&mut self, keys: &[(u32, Label)], miss: Label) {
        debug_assert!(keys.windows(2).all(|w| w[0].0 < w[1].0));
        if keys.len() <= 3 {
            for &(key, to) in keys {
                self.jump(JEQ_K, key, To::At(to), To::Next);
            }
            self.goto(miss);
            return;
        }
        let (low, high) = keys.split_at(keys.len() / 2);
        let upper = self.label();
        self.jump(JGE_K, high[0].0, To::At(upper), To::Next);
        self.dispatch(low, miss);
        self.place(upper);
        self.dispatch(high, miss);
    }

    /// The instructions, with every jump resolved; an error when a label was
    /// never placed or lies behind its jump or beyond an 8-bit offset.
    pub(crate) fn finish(self) -> Result<Vec<BpfInstruction>, String> {
        let offset = |at: usize, to: To| -> Result<u32, String> {
            let To::At(label) = to else { return Ok(0) };
            let target = self.labels[label.0].ok_or("a jump to a label never placed")?;
            target
                .checked_sub(at + 1)
                .map(|o| o as u32)
                .ok_or_else(|| format!("instruction {at} jumps backwards to {target}"))
        };
        let short = |at: usize, offset: u32| -> Result<u8, String> {
            u8::try_from(offset)
                .map_err(|_| format!("instruction {at} jumps {offset} instructions ahead"))
        };
        self.code
            .iter()
            .enumerate()
            .map(|(at, p)| {
                if p.code == JA {
                    return Ok(BpfInstruction {
                        code: JA,
                        jt: 0,
                        jf: 0,
                        k: offset(at, p.jt)?,
                    });
                }
                Ok(BpfInstruction {
                    code: p.code,
                    jt: short(at, offset(at, p.jt)?)?,
                    jf: short(at, offset(at, p.jf)?)?,
                    k: p.k,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Follows `program` for accumulator value `a` until a return.
    fn follow(program: &[BpfInstruction], a: u32) -> u32 {
        let mut pc = 0;
        loop {
            let i = &program[pc];
            pc += 1;
            pc += match i.code {
                RET_K => return i.k,
                JA => i.k as usize,
                JEQ_K if a == i.k => i.jt as usize,
                JGE_K if a >= i.k => i.jt as usize,
                JEQ_K | JGE_K => i.jf as usize,
                other => panic!("opcode {other:#x}"),
            };
        }
    }

    #[test]
    fn the_dispatch_tree_finds_every_key_and_nothing_else() {
        let keys: Vec<u32> = (0..40).map(|n| n * 7 + 3).collect();
        let mut asm = Asm::default();
        let miss = asm.label();
        let labels: Vec<_> = keys.iter().map(|&k| (k, asm.label())).collect();
        asm.dispatch(&labels, miss);
        asm.place(miss);
        asm.ret(u32::MAX);
        for &(key, label) in &labels {
            asm.place(label);
            asm.ret(key);
        }
        let program = asm.finish().unwrap();
        for a in 0..400 {
            let expected = if keys.contains(&a) { a } else { u32::MAX };
            assert_eq!(follow(&program, a), expected, "accumulator {a}");
        }
    }

    #[test]
    fn a_jump_too_far_for_eight_bits_is_an_error() {
        let mut asm = Asm::default();
        let far = asm.label();
        asm.jump(JEQ_K, 1, To::At(far), To::Next);
        for _ in 0..300 {
            asm.op(AND_K, 1);
        }
        asm.place(far);
        asm.ret(0);
        assert!(asm
            .finish()
            .unwrap_err()
            .contains("jumps 300 instructions ahead"));
    }
}
